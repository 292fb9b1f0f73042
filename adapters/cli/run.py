"""`dianabot run`: the Telegram bot by long polling, with the workers in the same process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.common import console, fail, services, settings
from dianabot.adapters.settings import Settings
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.context import BotServices
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.runner import (
    InvalidToken,
    check_token,
    run_polling,
    run_webhook,
)
from dianabot.adapters.workers import Workers
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication

DEMO_HINT = "; to see the bot work without Telegram, run `dianabot demo`"


def throttle_of(settings: Settings) -> UserThrottle | None:
    """The per-user flood limit the settings ask for (none with a burst of 0)."""
    if settings.throttle_burst == 0:
        return None
    return UserThrottle(burst=settings.throttle_burst, per_second=settings.throttle_per_second)


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
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="Take updates by webhook at this public URL (behind a reverse proxy; "
            "DIANABOT_WEBHOOK_SECRET required) instead of long polling.",
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Webhook: listen address [DIANABOT_WEBHOOK_HOST]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Webhook: listen port [DIANABOT_WEBHOOK_PORT]")
    ] = None,
) -> None:
    """Run the bot (DIANABOT_BOT_TOKEN, optional DIANABOT_TELEGRAM_API_SERVER) by long polling,
    or by webhook with --webhook URL, until SIGINT or SIGTERM, with the workers in the same
    process unless --no-workers (several processes: one of them leads the workers)."""
    resolved = settings()
    secret = resolved.bot_token.get_secret_value() if resolved.bot_token else None
    try:
        token = check_token(secret)
    except InvalidToken as error:
        fail(exits.USAGE, "no usable bot token", f"{error}{DEMO_HINT}")
    hook_secret = resolved.webhook_secret.get_secret_value() if resolved.webhook_secret else ""
    if webhook is not None:
        if not webhook.startswith(("https://", "http://")):
            fail(exits.USAGE, "bad webhook URL", f"{webhook!r} is not an http(s) URL")
        if not hook_secret:
            fail(
                exits.USAGE,
                "no webhook secret",
                "set DIANABOT_WEBHOOK_SECRET (the same in every bot process behind the proxy)",
            )
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
            throttle=throttle_of(wired.settings),
            database=wired.database,
        )
        api_server = wired.settings.telegram_api_server
        try:
            if webhook is None:
                console.print("bot: polling; Ctrl-C or SIGTERM to stop", highlight=False)
                asyncio.run(run_polling(bot, token, api_server))
            else:
                listen = (host or wired.settings.webhook_host, wired.settings.webhook_port)
                listen = (listen[0], listen[1] if port is None else port)
                console.print(
                    f"bot: webhook {webhook} on {listen[0]}:{listen[1]}; Ctrl-C or SIGTERM to stop",
                    highlight=False,
                )
                asyncio.run(
                    run_webhook(
                        bot,
                        token,
                        api_server,
                        url=webhook,
                        secret=hook_secret,
                        host=listen[0],
                        port=listen[1],
                    )
                )
        except InvalidToken as error:
            fail(exits.USAGE, "invalid bot token", f"{error}{DEMO_HINT}")
        except OSError as error:  # the webhook's address is taken or not ours
            fail(exits.USAGE, "cannot serve", f"webhook address: {error.strerror or error}")
        finally:
            if runner is not None:
                runner.stop()
        console.print("bot: stopped", highlight=False)
