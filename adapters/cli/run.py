"""`dianabot run`: the Telegram bot by long polling, with the workers in the same process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, fail, services, settings
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.context import BotServices
from dianabot.adapters.telegram.runner import InvalidToken, check_token, run_polling
from dianabot.adapters.workers import Workers
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication

DEMO_HINT = "; to see the bot work without Telegram, run `dianabot demo`"


def publish_bundled_story_if_none(app: DianaApplication) -> None:
    """A bot on a new store tells its story from the first /story: the bundled one, unless
    one is published (`dianabot story publish` replaces it)."""
    if app.published_story() is None:
        result = app.publish_story(load_bundled_story(), Origin.system("run", "story"))
        console.print(f"bot: published the bundled story ({result.outcome})", highlight=False)


def run(
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            help="Do not run the projectors, policies and jobs here (run `dianabot workers` "
            "elsewhere).",
        ),
    ] = False,
) -> None:
    """Run the bot by long polling (DIANABOT_BOT_TOKEN, optional DIANABOT_TELEGRAM_API_SERVER)
    until SIGINT or SIGTERM, with the workers in the same process unless --no-workers."""
    resolved = settings()
    secret = resolved.bot_token.get_secret_value() if resolved.bot_token else None
    try:
        token = check_token(secret)
    except InvalidToken as error:
        fail(exits.USAGE, "no usable bot token", f"{error}{DEMO_HINT}")
    with services() as wired:
        assert wired.coordinator is not None
        runner = None if no_workers else Workers(wired, wired.settings)
        if runner is not None:
            try:
                runner.start()
            except OSError as error:
                runner.stop()
                fail(exits.USAGE, "cannot serve", f"workers port: {error.strerror or error}")
        publish_bundled_story_if_none(wired.app)
        bot = BotServices(
            coordinator=wired.coordinator,
            app=wired.app,
            projections=wired.projections,
            settings=wired.settings,
            clock=wired.clock,
        )
        console.print("bot: polling; Ctrl-C or SIGTERM to stop", highlight=False)
        try:
            asyncio.run(run_polling(bot, token, wired.settings.telegram_api_server))
        except InvalidToken as error:
            fail(exits.USAGE, "invalid bot token", f"{error}{DEMO_HINT}")
        finally:
            if runner is not None:
                runner.stop()
        console.print("bot: stopped", highlight=False)
