"""The real bot driven at the JSON level, as the polling loop and the webhook receive updates:
each raw update is parsed by `polling.parse_update` (what `UpdatePoller` does with a
`getUpdates` answer) and handled through `polling.InTurn` (what both the poller and the webhook
hand updates to), by `build_dispatcher`'s dispatcher on a `Bot` whose session is `FakeSession`
(every call recorded and answered). In process, on one event loop, no network: fast enough for
hypothesis.

`ErrorLog` collects what is logged at ERROR meanwhile: bad input must never log a traceback."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.types import Update
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.story_file import load_bundled_story
from dianabot.adapters.telegram.bot import RetryAfterMiddleware, build_dispatcher
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.polling import InTurn, parse_update
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES

from tests.conftest import make_settings
from tests.kit import strategies as kst
from tests.telegram_fake import FakeSession
from tests.telegram_live import bot_services_of

BOT_ID = 7_000_016
TOKEN = f"{BOT_ID}:KIT-dispatcher-token"
REPLIES = ("sendMessage", "answerCallbackQuery", "editMessageText", "sendPoll")
"""The Bot API calls that answer the sender of an update."""
EXPECTED_ERRORS = ("has a payload that is not ours",)
"""ERROR lines (no traceback) the bot writes on purpose for input: a payment it cannot place
is logged for an admin (money)."""


def wired_bot_services(url: str, clock: ManualClock) -> Services:
    """Services as `dianabot run` wires them (the catalogue, the bundled story published), with
    the channel, group and VIP channel the strategies' updates speak of."""
    settings = make_settings(
        url, channel_id=kst.CHANNEL, group_id=kst.GROUP, vip_channel_id=kst.VIP_CHANNEL
    )
    services = bootstrap(settings, clock=clock)
    services.app.ensure_badges(INITIAL_BADGES, Origin.system("kit", "catalogue"))
    assert services.app.publish_story(load_bundled_story(), Origin.system("kit", "story")).ok
    return services


@dataclass
class Delivery:
    """One raw update handed to the bot: what it parsed to and the calls it caused."""

    raw: Any
    update: Update | None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def count(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    def texts(self) -> list[str]:
        return [str(p["text"]) for name, p in self.calls if name in REPLIES and p.get("text")]


class BotDriver:
    """A bot process's dispatcher over `services` (a new one is a restarted bot: it knows no
    user yet, its throttle and caches are empty)."""

    def __init__(self, services: Services, throttle: UserThrottle | None = None) -> None:
        """`throttle`: the per-user flood limit as `dianabot run` has it (off by default: its
        wall-clock buckets would make a stateful example depend on timing)."""
        assert services.coordinator is not None
        self.services = services
        self.bot_services = bot_services_of(
            services,
            read_timeout=0.0,  # the read models catch up when the test says so
            throttle=throttle,
            follow=False,
        )
        self.dispatcher = build_dispatcher(self.bot_services)
        self.session = FakeSession()
        self.session.middleware(RetryAfterMiddleware())
        self.bot = Bot(TOKEN, session=self.session)
        self.turns: InTurn | None = None

    async def deliver(self, raw: Any) -> Delivery:
        """Parse `raw` as the poller does and, if it parses, handle it to the end."""
        if self.turns is None:  # made on the loop that runs it
            self.turns = InTurn(self.dispatcher, self.bot, sequential=True)
        before = len(self.session.calls)
        update = parse_update(raw, self.bot)
        if update is not None:
            receipt = self.turns.start(update)
            await receipt.settled.wait()
            await self.turns.drain(30)
        return Delivery(raw, update, self.session.calls[before:])


class ErrorLog(logging.Handler):
    """The ERROR records logged while attached to the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> ErrorLog:
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self)

    def unexpected(self) -> list[str]:
        """Every traceback, and every ERROR line not in `EXPECTED_ERRORS`."""
        return [
            f"{r.name}: {r.getMessage()}" + (" (with a traceback)" if r.exc_info else "")
            for r in self.records
            if r.exc_info or not any(e in r.getMessage() for e in EXPECTED_ERRORS)
        ]

    def clear(self) -> None:
        self.records.clear()


def run(loop: asyncio.AbstractEventLoop, driver: BotDriver, raw: Any) -> Delivery:
    return loop.run_until_complete(asyncio.wait_for(driver.deliver(raw), 60))
