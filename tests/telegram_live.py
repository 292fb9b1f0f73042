"""The real bot long-polling the local Bot API, for end-to-end tests: `live_bot(services)` runs
`build_dispatcher` on an aiogram `Bot` reaching `LocalBotAPI` through `TelegramAPIServer`, and
`Live` is what a test does through it (inject updates, wait for the bot's calls) and reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiogram import Bot
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.bot import build_dispatcher, make_bot
from dianabot.adapters.telegram.context import BotServices
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.local_api import Call, LocalBotAPI
from dianabot.adapters.telegram.polling import UpdatePoller
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.projections import queries

from tests.conftest import audit_key_env, make_settings

BOT_ID = 7_000_001
TOKEN = f"{BOT_ID}:E2E-protection-token"
CHANNEL = -100_1001
GROUP = -100_1002
VIP_CHANNEL = -100_1003
SENTINEL = 999_999
ANA = 1001
LUIS = 1002
JSON = dict[str, Any]


def wire(database_url: str, clock: ManualClock) -> Services:
    settings = make_settings(database_url, channel_id=CHANNEL, group_id=GROUP)
    services = bootstrap(settings, clock=clock)
    services.app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))
    services.app.publish_story(load_bundled_story(), Origin.system("test", "story"))
    assert services.projections is not None
    services.projections.start()
    return services


class Live:
    """The bot polling a local Bot API, and what a test does through it."""

    def __init__(
        self, services: Services, api: LocalBotAPI, bot: Bot, poller: UpdatePoller
    ) -> None:
        self.services = services
        self.api = api
        self.bot = bot
        self.poller = poller

    # ----- what people do -------------------------------------------------------------------

    def _to(self, chat: int) -> Callable[[Call], bool]:
        return lambda call: call.params.get("chat_id") == chat

    def sent_to(self, chat: int) -> list[Call]:
        return [c for c in self.api.calls("sendMessage") if self._to(chat)(c)]

    async def replies(self, chat: int, count: int, timeout: float = 10.0) -> list[Call]:
        return await self.api.wait_for_calls_async(
            "sendMessage", count, where=self._to(chat), timeout=timeout
        )

    async def ask(self, user: int, text: str, replies: int = 1) -> str:
        """A private message; the bot's (last) reply."""
        before = len(self.sent_to(user))
        self.api.inject_message(user, text)
        return str((await self.replies(user, before + replies))[-1].params["text"])

    async def deliver(self, update: JSON) -> None:
        """An update delivered (again, with its id: as after a lost offset) and handled."""
        self.api.inject_update(update)
        await self.settle()

    async def settle(self) -> None:
        """Wait until every update injected so far is handled (the sentinel's reply comes
        after them: the dispatcher handles one update after the other)."""
        await self.ask(SENTINEL, "/help")

    async def post(self, text: str = "Un post de Diana") -> tuple[int, int]:
        """A post in the channel; the bot attaches the reaction buttons."""
        before = len(self.api.calls("editMessageReplyMarkup"))
        message = self.api.inject_channel_post(CHANNEL, text)["channel_post"]
        await self.api.wait_for_calls_async("editMessageReplyMarkup", before + 1)
        return CHANNEL, int(message["message_id"])

    def buttons(self, chat: int, message_id: int) -> list[str]:
        markup = self.api.message(chat, message_id).get("reply_markup") or {}
        rows = markup.get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]

    async def press(self, user: int, where: tuple[int, int], data: str) -> str:
        """Press an inline button; the text the bot answered the press with."""
        update = self.api.inject_callback_query(user, where, data)
        return await self.answer_to(update)

    async def answer_to(self, update: JSON, count: int = 1) -> str:
        query = update["callback_query"]["id"]
        calls = await self.api.wait_for_calls_async(
            "answerCallbackQuery",
            count,
            where=lambda call: call.params.get("callback_query_id") == query,
            timeout=10,
        )
        return str(calls[-1].params.get("text", ""))

    # ----- what happened ----------------------------------------------------------------------

    def balance(self, user: int) -> int:
        player = self.services.app.get_player(user)
        return -1 if player is None else player.balance

    def read_model(self, user: int) -> JSON:
        projections = self.services.projections
        assert projections is not None
        assert projections.wait_for(event_log(self.services.app).head(), 10)
        profile = queries.profile(projections, user)
        assert profile is not None
        return profile

    def held(self, user: int) -> list[str]:
        projections = self.services.projections
        assert projections is not None
        assert projections.wait_for(event_log(self.services.app).head(), 10)
        return [row["badge_slug"] for row in queries.badges(projections, user)]

    def consistent(self) -> bool:
        projections = self.services.projections
        assert projections is not None
        assert projections.wait_for(event_log(self.services.app).head(), 10)
        return projections.reconcile().consistent


def bot_services_of(services: Services, **options: Any) -> BotServices:
    """The bot's services on these (`options`: `follow`, `throttle`, ...)."""
    assert services.coordinator is not None
    return BotServices(
        coordinator=services.coordinator,
        app=services.app,
        projections=services.projections,
        settings=services.settings,
        clock=services.clock,
        database=services.database,
        **options,
    )


@asynccontextmanager
async def live_bot(
    services: Services,
    *,
    handle_as_tasks: bool = False,
    throttle: UserThrottle | None = None,
    follow: bool = False,
) -> AsyncIterator[Live]:
    """The bot polling a fresh local Bot API (with the default throttle unless given one;
    the VIP follower only when `follow`: it writes positions of its own); one update after the
    other, or (`handle_as_tasks`) different senders' concurrently."""
    bot_services = bot_services_of(services, follow=follow)
    if throttle is not None:
        bot_services.throttle = throttle
    dispatcher = build_dispatcher(bot_services)
    async with LocalBotAPI(TOKEN) as api:
        api.add_channel(CHANNEL)
        api.add_group(GROUP)
        api.add_channel(VIP_CHANNEL, title="El Diván")
        bot = make_bot(TOKEN, api.url)
        poller = UpdatePoller(
            dispatcher,
            bot,
            store_answers=services.app.store_answers,
            timeout=1,
            sequential=not handle_as_tasks,
        )
        polling = asyncio.create_task(poller.run())
        try:
            await api.wait_for_calls_async("setMyCommands")
            yield Live(services, api, bot, poller)
        finally:
            poller.stop()
            await asyncio.wait_for(polling, 10)
            await bot.session.close()


def run(services: Services, scenario: Callable[[Live], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        async with live_bot(services, **options) as live:
            return await scenario(live)

    return asyncio.run(asyncio.wait_for(main(), 50))


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.02)


DIANABOT = Path(sys.executable).with_name("dianabot")


class BotRun:
    """`dianabot run ARGS...` in a process of its own against the Bot API server `api`, on the
    store `url`, with `settings` as `DIANABOT_<NAME>` variables (nothing else of the caller's);
    its output in `directory/<name>.log`."""

    def __init__(
        self,
        url: str,
        api: str,
        directory: Path,
        name: str,
        *args: str,
        token: str = TOKEN,
        **settings: str,
    ) -> None:
        self.log = directory / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")}
        env.update(audit_key_env(url))  # PostgreSQL: the key the test's own process uses
        env.update(
            DIANABOT_DATABASE_URL=url,
            DIANABOT_BOT_TOKEN=token,
            DIANABOT_TELEGRAM_API_SERVER=api,
            DIANABOT_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update({f"DIANABOT_{key.upper()}": value for key, value in settings.items()})
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [str(DIANABOT), "run", *args],
                cwd=directory,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and its exit code (-9 when it had to be killed after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9
