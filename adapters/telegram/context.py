"""What a handler is handed: the bot's services and a `Gateway` bound to the update in hand.

`ContextMiddleware` (in `middlewares`) builds one `Gateway` per update. Through it a handler
runs actions and commands on the coordinator, always with the origin of that update
(`Origin.telegram(update_id, user, bot_id=...)`, the idempotency key of all it causes), and asks
the read models its questions. Blocking reads run in a worker thread, off the event loop.

Read-your-writes: the gateway remembers, per user, the log position of the last events the
user's own commands recorded, and a read about that user first waits (briefly, `read_timeout`)
for the read models to reach it; so `/profile` right after `/checkin` shows the check-in even
when the projections run in another thread or process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from dianabot.adapters.eventstore.database import Database
from dianabot.adapters.settings import Settings
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.texts import Texts
from dianabot.application.clock import Clock
from dianabot.application.commands import Command, RegisterPlayer
from dianabot.application.coordinator import ActionResult, Coordinator, Executable, Issue
from dianabot.application.health import HealthReport, TelegramStatus
from dianabot.application.narrative import StoryView
from dianabot.application.results import UNAVAILABLE, Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.player import Player
from dianabot.projections import queries
from dianabot.projections.reconcile import ReconcileReport
from dianabot.projections.service import Projections

log = logging.getLogger(__name__)

R = TypeVar("R")

KNOWN_USERS_KEPT = 100_000
"""Users this process knows are registered (so an award needs no registration command)."""


class BotMonitor:
    """The bot's side of health (`application.health.TelegramMonitor`)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.running = False
        self.connected = False
        self.detail = ""
        self.last_update_at: datetime | None = None

    def seen_update(self) -> None:
        self.last_update_at = self.clock.now()
        self.connected = True

    def telegram_status(self) -> TelegramStatus:
        return TelegramStatus(self.running, self.connected, self.detail, self.last_update_at)


@dataclass
class BotServices:
    """Everything the handlers use, built once by `bot.build_dispatcher`'s caller."""

    coordinator: Coordinator
    app: DianaApplication
    """For the narrative view (`current_fragment`) and the player's VIP period."""
    projections: Projections | None
    settings: Settings
    clock: Clock
    texts: Texts = field(default_factory=Texts.load)
    read_timeout: float = 2.0
    """How long a read waits for the read models to reach the user's own last write."""
    monitor: BotMonitor | None = None
    throttle: UserThrottle | None = field(default_factory=UserThrottle)
    """Per-user flood limit (`limits.ThrottleMiddleware`); None: no limit."""
    follow: bool = True
    """Run the VIP follower (`followers`: the VIP channel and VIP messages) while the bot runs.
    Several bot processes on one store may all follow: one at a time holds its lock."""
    database: Database | None = None
    """The store, for the follower's lock (None: the one `settings.database_url` names)."""
    follower: Any = field(default=None, repr=False)
    """The running `followers.BotFollower`, between startup and shutdown."""
    _known: OrderedDict[int, None] = field(default_factory=OrderedDict, repr=False)
    _written: dict[int, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.settings.admin_ids

    def known(self, user_id: int) -> bool:
        return user_id in self._known

    def remember(self, user_id: int) -> None:
        with self._lock:
            self._known[user_id] = None
            self._known.move_to_end(user_id)
            while len(self._known) > KNOWN_USERS_KEPT:
                self._known.popitem(last=False)

    def wrote(self, user_id: int, result: ActionResult) -> None:
        positions = [e.position for e in result.events if e.position is not None]
        if positions:
            with self._lock:
                self._written[user_id] = max(self._written.get(user_id, 0), *positions)

    def last_write(self, user_id: int) -> int | None:
        return self._written.get(user_id)


@dataclass
class Receipt:
    """What handling one update came to, for the loop that fetched it (`polling`): whether
    something it asked of the store could not be recorded (the store was unavailable), so the
    update must be delivered again rather than confirmed; and when it is settled: handled, or
    (`defer`) only waiting out Telegram's flood control for a reply, after what it recorded."""

    update_id: int
    unrecorded: bool = False
    deferred: bool = False
    settled: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def defer(self) -> None:
        self.deferred = True
        self.settled.set()


CURRENT_RECEIPT: ContextVar[Receipt | None] = ContextVar("current_receipt", default=None)
"""The receipt of the update being handled in this task (set by the polling loop), so the
bot's session can `defer` it while it waits out a 429."""


class Gateway:
    """The services, bound to one update: the origin of everything that update causes."""

    def __init__(
        self, services: BotServices, update_id: int, bot_id: int, receipt: Receipt | None = None
    ) -> None:
        self.services = services
        self.update_id = update_id
        self.bot_id = bot_id
        self.receipt = receipt or Receipt(update_id)

    @property
    def texts(self) -> Texts:
        return self.services.texts

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def now(self) -> datetime:
        return self.services.clock.now()

    def is_admin(self, user_id: int) -> bool:
        return self.services.is_admin(user_id)

    def origin(self, user_id: int) -> Origin:
        return Origin.telegram(self.update_id, user_id, bot_id=self.bot_id)

    # ----- writes -------------------------------------------------------------------------

    async def execute(self, action: Executable, user_id: int) -> ActionResult:
        """Run an action (its origin from `origin(user_id)`) and note the user's write."""
        result = await self.services.coordinator.execute(action)
        if result.outcome == UNAVAILABLE:
            self.receipt.unrecorded = True
        self.services.wrote(user_id, result)
        return result

    async def issue(self, command: Command, user_id: int) -> ActionResult:
        """Run any command of the bus for the update's user `user_id`."""
        return await self.execute(Issue(command, self.origin(user_id)), user_id)

    async def register(
        self, user_id: int, name: str, language: str | None, *, force: bool = False
    ) -> ActionResult | None:
        """Register the user unless this process knows they are (None then). Idempotent."""
        if not force and self.services.known(user_id):
            return None
        result = await self.issue(RegisterPlayer(user_id, name, (language or "")[:8]), user_id)
        if result.ok or result.outcome == "duplicate":
            self.services.remember(user_id)
        return result

    # ----- reads --------------------------------------------------------------------------

    async def _read(self, user_id: int | None, question: Callable[[], R]) -> R:
        return await asyncio.to_thread(self._read_sync, user_id, question)

    def _read_sync(self, user_id: int | None, question: Callable[[], R]) -> R:
        projections = self.services.projections
        position = None if user_id is None else self.services.last_write(user_id)
        if (
            projections is not None
            and position is not None
            and not projections.wait_for(position, self.services.read_timeout)
        ):
            log.info("read models behind position %s for user %s", position, user_id)
        return question()

    def _projections(self) -> Projections:
        if self.services.projections is None:
            raise LookupError("this bot runs without read models")
        return self.services.projections

    async def profile(self, user_id: int, *, after: int | None = None) -> dict[str, Any] | None:
        """The user's profile, once the read models have the last write of `after` (by default
        the user: an admin's grant is the admin's write)."""
        projections = self._projections()
        writer = user_id if after is None else after
        return await self._read(writer, lambda: queries.profile(projections, user_id))

    async def badges(self, user_id: int) -> list[dict[str, Any]]:
        projections = self._projections()
        return await self._read(user_id, lambda: queries.badges(projections, user_id))

    async def top(self, user_id: int, limit: int = 10) -> list[dict[str, Any]]:
        projections = self._projections()
        return await self._read(user_id, lambda: queries.top(projections, limit=limit))

    async def story(self, user_id: int) -> StoryView | None:
        return await asyncio.to_thread(self.services.app.current_fragment, user_id)

    async def player(self, user_id: int) -> Player | None:
        return await asyncio.to_thread(self.services.app.get_player, user_id)

    async def health(self) -> HealthReport:
        return await asyncio.to_thread(self.services.coordinator.health)

    async def reconcile(self) -> ReconcileReport:
        projections = self._projections()
        return await asyncio.to_thread(projections.reconcile)
