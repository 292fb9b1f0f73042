"""Telegram's limits, kept on the bot's side.

- `ThrottleMiddleware` (with `UserThrottle`): one user flooding the bot is slowed down. Each user
  has a token bucket (`burst` updates at once, refilled at `per_second`); an update over it is
  dropped before any handler runs (so it awards nothing), and the user is told once per
  exhaustion (`refusal.throttled`, in a private chat or as the answer to a button), then silence
  until the bucket has a token again. Admins and updates without a user (channel posts) pass,
  and so do payments and VIP channel member changes (`exempt`: Telegram sends them once).
- `RateLimitedSender`: messages to many users (announcements, notices) at most `overall`
  messages per second for the bot and `per_chat` per chat, below Telegram's documented limits
  (about 30 messages per second per bot, one per second per chat). A user who blocked the bot
  (403) is counted and skipped; a 429 is waited out by the session's `RetryAfterMiddleware`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.types import TelegramObject, Update, User
from dianabot.adapters.telegram.replies import tell

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

USERS_TRACKED = 100_000
"""Users whose buckets are kept (the least recently seen are forgotten: a full bucket)."""


class TokenBucket:
    """`capacity` tokens, refilled at `rate` per second. Not thread-safe: one event loop."""

    def __init__(self, rate: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a token bucket needs a positive rate and a capacity of at least 1")
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.tokens = capacity
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def try_take(self) -> bool:
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a token is there (0 when one is)."""
        self._refill()
        return max(0.0, (1 - self.tokens) / self.rate)

    async def take(self) -> None:
        """Wait for a token and take it (callers queue in arrival order, roughly)."""
        while not self.try_take():
            await asyncio.sleep(self.wait_time())


@dataclass
class UserThrottle:
    """Per-user token buckets: `burst` updates at once, `per_second` sustained."""

    burst: int = 40
    per_second: float = 2.0
    clock: Clock = time.monotonic
    _buckets: OrderedDict[int, TokenBucket] = field(default_factory=OrderedDict, repr=False)
    _warned: set[int] = field(default_factory=set, repr=False)

    def check(self, user_id: int) -> str:
        """`pass` (handle it), `warn` (drop it, tell the user once), `drop` (drop it quietly)."""
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = TokenBucket(self.per_second, self.burst, self.clock)
            while len(self._buckets) > USERS_TRACKED:
                forgotten, _ = self._buckets.popitem(last=False)
                self._warned.discard(forgotten)
        self._buckets.move_to_end(user_id)
        if bucket.try_take():
            self._warned.discard(user_id)
            return "pass"
        if user_id in self._warned:
            return "drop"
        self._warned.add(user_id)
        return "warn"


class ThrottleMiddleware(BaseMiddleware):
    """Outer update middleware: drops a flooding user's updates (see the module docstring).
    Registered after `ContextMiddleware`, which contains a failure to send the warning."""

    def __init__(
        self, throttle: UserThrottle, text: str, is_admin: Callable[[int], bool] | None = None
    ) -> None:
        self.throttle = throttle
        self.text = text
        self.is_admin = is_admin or (lambda user_id: False)
        self.dropped = 0

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        bot = data.get("bot")
        if not isinstance(user, User) or not isinstance(event, Update) or self.is_admin(user.id):
            return await handler(event, data)
        if exempt(event):
            return await handler(event, data)
        verdict = self.throttle.check(user.id)
        if verdict == "pass":
            return await handler(event, data)
        self.dropped += 1
        log.info("update %s of user %s throttled (%s)", event.update_id, user.id, verdict)
        if verdict == "warn" and isinstance(bot, Bot):
            await tell(bot, event, data.get("event_chat"), self.text)
        return UNHANDLED


def exempt(update: Update) -> bool:
    """Updates never throttled: Telegram sends them once and they carry money or membership
    (a pre-checkout query, a successful payment, a VIP channel member change)."""
    message = update.message
    return (
        update.pre_checkout_query is not None
        or update.chat_member is not None
        or (message is not None and message.successful_payment is not None)
    )


@dataclass
class BroadcastReport:
    sent: int = 0
    blocked: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class RateLimitedSender:
    """Sends messages within `overall` per second for the bot and `per_chat` per chat."""

    def __init__(
        self,
        bot: Bot,
        *,
        overall: float = 25.0,
        per_chat: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.bot = bot
        self.clock = clock
        self.per_chat = per_chat
        self.overall = TokenBucket(overall, max(1.0, overall / 5), clock)
        self._chats: dict[int, TokenBucket] = {}

    async def send(self, chat_id: int, text: str, **options: Any) -> None:
        """Send one message when both limits allow it (raises what Telegram answers)."""
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = TokenBucket(self.per_chat, 1.0, self.clock)
        await chat.take()
        await self.overall.take()
        if len(self._chats) > USERS_TRACKED:
            self._chats = {chat_id: chat}
        await self.bot.send_message(chat_id, text, **options)

    async def broadcast(
        self, chat_ids: Iterable[int], text: str, *, concurrency: int = 8, **options: Any
    ) -> BroadcastReport:
        """The same text to many chats; who blocked the bot, and who could not be reached."""
        report = BroadcastReport()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for chat_id in chat_ids:
            queue.put_nowait(chat_id)

        async def worker() -> None:
            while not queue.empty():
                chat_id = queue.get_nowait()
                try:
                    await self.send(chat_id, text, **options)
                    report.sent += 1
                except TelegramForbiddenError:
                    report.blocked.append(chat_id)
                except TelegramBadRequest as error:
                    log.warning("message to %s refused: %s", chat_id, error.message)
                    report.failed.append(chat_id)

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
        return report
