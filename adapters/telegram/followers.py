"""The bot process's follower: the `vip-channel` policy, with Telegram behind its port.

Why here: the policy's effects are Telegram calls (invite links, removals, messages), which need
the `Bot`, and the bot process has it. It runs on the bot's event loop as one task: each step of
its `PolicyRunner` (a page of the log; blocking store reads and the recording commands) runs in
a worker thread, and the port's Telegram calls hop back onto the loop
(`run_coroutine_threadsafe`). Its position is its tracking record `policy:vip-channel`, written
with each effect's recording command (`projections.subscriptions`), so a restarted bot resumes
after the last recorded effect. `dianabot policies status|retry` know it (`BOT_POLICIES`).

Messages go through `limits.RateLimitedSender` (25 per second overall, 1 per second per chat).
One process at a time: several bot processes on one store (webhook workers) each start a
follower, and only the one holding the store's follower lock (`leadership.FOLLOWER`: a
PostgreSQL advisory lock, a file lock beside a SQLite file; not the workers' lock, since the
workers may run elsewhere) runs the policy; the others stand by, try again every
`workers_standby_retry` seconds, and one of them takes over once the holder stops or dies
(resuming from the recorded position). The records would stay exactly-once without the lock
(tracking), but two processes could both send the same message. The lock is released on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from dianabot.adapters.eventstore.database import database_from_url
from dianabot.adapters.eventstore.leadership import FOLLOWER, LeaderLock, leader_lock
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.telegram.limits import RateLimitedSender
from dianabot.adapters.telegram.texts import T, Texts
from dianabot.application.policies.vip_channel import ENDED, INVITATION, WELCOME, VipChannel
from dianabot.projections.subscriptions import PolicyRunner

if TYPE_CHECKING:
    from dianabot.adapters.telegram.context import BotServices

log = logging.getLogger(__name__)

R = TypeVar("R")

NOTICES = {WELCOME: T.VIP_WELCOME, ENDED: T.VIP_ENDED, INVITATION: T.VIP_INVITATION}
DATE = "%d/%m/%Y"
CALL_TIMEOUT = 60.0
"""Seconds one Telegram call of the follower may take (a rate-limited send waits its turn)."""
LOCK_CHECK_SECONDS = 2.0
"""How often the holder makes sure it still holds the follower lock."""

LEADER = "leader"
STANDBY = "standby"
STOPPED = "stopped"


class TelegramVipChannel:
    """`VipChannelPort` with a `Bot`: blocking calls from the runner's thread, run on the loop."""

    def __init__(
        self,
        bot: Bot,
        texts: Texts,
        channel_id: int | None,
        loop: asyncio.AbstractEventLoop,
        sender: RateLimitedSender | None = None,
    ) -> None:
        self.bot = bot
        self.texts = texts
        self.channel_id = channel_id
        self.loop = loop
        self.sender = sender or RateLimitedSender(bot)

    def _call(self, work: Coroutine[Any, Any, R]) -> R:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(CALL_TIMEOUT)

    @property
    def has_channel(self) -> bool:
        return self.channel_id is not None

    def _channel(self) -> int:
        if self.channel_id is None:
            raise LookupError("DIANABOT_VIP_CHANNEL_ID is not set")
        return self.channel_id

    def create_invite(self, telegram_id: int) -> str:
        link = self._call(
            self.bot.create_chat_invite_link(
                self._channel(), name=f"vip:{telegram_id}", member_limit=1
            )
        )
        return link.invite_link

    def tell(self, telegram_id: int, notice: str, **fields: Any) -> bool:
        shown = {k: f"{v:{DATE}}" if isinstance(v, datetime) else v for k, v in fields.items()}
        text = self.texts(NOTICES[notice], **shown)
        try:
            self._call(self.sender.send(telegram_id, text))
        except TelegramForbiddenError:
            log.info("%s to %s: the user blocked the bot", notice, telegram_id)
            return False
        except TelegramBadRequest as error:
            log.warning("%s to %s refused: %s", notice, telegram_id, error.message)
            return False
        return True

    def remove(self, telegram_id: int) -> None:
        channel = self._channel()
        self._call(self.bot.ban_chat_member(channel, telegram_id))
        self._call(self.bot.unban_chat_member(channel, telegram_id, only_if_banned=True))

    def revoke(self, invite_link: str) -> None:
        try:
            self._call(self.bot.revoke_chat_invite_link(self._channel(), invite_link))
        except TelegramBadRequest as error:  # revoked or expired already
            log.info("invite link not revoked: %s", error.message)


class RehearsedVipChannel:
    """`VipChannelPort` that calls nobody: what the policy would do (`policies retry --dry-run`)."""

    def __init__(self, channel_id: int | None) -> None:
        self.channel_id = channel_id

    @property
    def has_channel(self) -> bool:
        return self.channel_id is not None

    def create_invite(self, telegram_id: int) -> str:
        return "(a new invite link)"

    def tell(self, telegram_id: int, notice: str, **fields: Any) -> bool:
        return True

    def remove(self, telegram_id: int) -> None:
        """Nothing is removed."""

    def revoke(self, invite_link: str) -> None:
        """Nothing is revoked."""


class BotFollower:
    """The vip-channel policy's runner as a task of the bot's loop, while this process holds
    the follower lock (see the module)."""

    def __init__(
        self,
        services: BotServices,
        bot: Bot,
        interval: float = 0.5,
        *,
        lock: LeaderLock | None = None,
        standby_retry: float | None = None,
    ) -> None:
        self.services = services
        self.bot = bot
        self.interval = interval
        self.port = TelegramVipChannel(
            bot, services.texts, services.settings.vip_channel_id, asyncio.get_running_loop()
        )
        app = services.app
        self.runner = PolicyRunner(app, event_log(app), [VipChannel(app, self.port)])
        database = services.database or database_from_url(services.settings.database_url)
        self.lock = lock or leader_lock(database, FOLLOWER)
        self.standby_retry = (
            services.settings.workers_standby_retry if standby_retry is None else standby_retry
        )
        self.role = STOPPED
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def start(self) -> None:
        self.role = STANDBY
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vip-follower")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the step in hand finish (its Telegram calls need this loop), release the lock,
        then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout)
        except TimeoutError:
            log.warning("the VIP follower did not stop within %s s", timeout)
            await asyncio.to_thread(self.lock.release)
        self.role = STOPPED

    async def _run(self) -> None:
        try:
            told_standby = False
            while not self._stopping.is_set():
                if not await asyncio.to_thread(self._acquire):
                    if not told_standby:
                        holder = await asyncio.to_thread(self.lock.holder)
                        log.info(
                            "VIP follower: standing by; another process holds it (%s%s); "
                            "trying again every %.1f s",
                            self.lock.description,
                            f", {holder}" if holder else "",
                            self.standby_retry,
                        )
                        told_standby = True
                    await self._wait(self.standby_retry)
                    continue
                told_standby = False
                self.role = LEADER
                log.info("VIP follower: running (%s)", self.lock.description)
                await self._follow()
                self.role = STANDBY
        finally:
            await asyncio.to_thread(self.lock.release)
            self.role = STOPPED

    def _acquire(self) -> bool:
        try:
            return self.lock.acquire()
        except Exception:
            log.exception("VIP follower: could not ask for its lock")
            return False

    async def _follow(self) -> None:
        """Run the policy (page after page while there is work, else every `interval`) until
        stopping or the lock is lost."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not self._stopping.is_set():
            if loop.time() - checked >= LOCK_CHECK_SECONDS:
                checked = loop.time()
                if not await asyncio.to_thread(self.lock.held):
                    log.error("VIP follower: lost its lock; standing by")
                    return
            try:
                read = await asyncio.to_thread(self.runner.step)
            except Exception:
                log.exception("the VIP follower failed a step; trying again")
                read = None
            if read is None:
                await self._wait(self.interval)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)


async def start_follower(services: BotServices, bot: Bot) -> BotFollower | None:
    """Start the follower unless the services say not to (`follow=False`)."""
    if not services.follow:
        return None
    follower = BotFollower(services, bot)
    follower.start()
    log.info("VIP follower started (channel %s)", services.settings.vip_channel_id)
    return follower
