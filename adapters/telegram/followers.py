"""The bot process's follower: the `vip-channel` policy, with Telegram behind its port.

Why here: the policy's effects are Telegram calls (invite links, removals, messages), which need
the `Bot`, and the bot process has it. It runs on the bot's event loop as one task: each step of
its `PolicyRunner` (a page of the log; blocking store reads and the recording commands) runs in
a worker thread, and the port's Telegram calls hop back onto the loop
(`run_coroutine_threadsafe`). Its position is its tracking record `policy:vip-channel`, written
with each effect's recording command (`projections.subscriptions`), so a restarted bot resumes
after the last recorded effect; `dianabot policies status` does not list it (the workers do not
run it), the store's tracking table does.

Messages go through `limits.RateLimitedSender` (25 per second overall, 1 per second per chat).
Several bot processes on one store would each run it: the records stay exactly-once (tracking),
but two processes could both send the same message; run it in one of them (`follow=False` in
the others' `BotServices`).
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
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.telegram.limits import RateLimitedSender
from dianabot.adapters.telegram.texts import T
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


class TelegramVipChannel:
    """`VipChannelPort` with a `Bot`: blocking calls from the runner's thread, run on the loop."""

    def __init__(
        self,
        bot: Bot,
        services: BotServices,
        loop: asyncio.AbstractEventLoop,
        sender: RateLimitedSender | None = None,
    ) -> None:
        self.bot = bot
        self.texts = services.texts
        self.channel_id = services.settings.vip_channel_id
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


class BotFollower:
    """The vip-channel policy's runner as a task of the bot's loop (see the module)."""

    def __init__(self, services: BotServices, bot: Bot, interval: float = 0.5) -> None:
        self.services = services
        self.bot = bot
        self.interval = interval
        self.port = TelegramVipChannel(bot, services, asyncio.get_running_loop())
        app = services.app
        self.runner = PolicyRunner(app, event_log(app), [VipChannel(app, self.port)])
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="vip-follower")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the step in hand finish (its Telegram calls need this loop), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout)
        except TimeoutError:
            log.warning("the VIP follower did not stop within %s s", timeout)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while not self._stopping.is_set():
                    if await asyncio.to_thread(self.runner.step) is None:
                        break
            except Exception:
                log.exception("the VIP follower failed a step; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)


async def start_follower(services: BotServices, bot: Bot) -> BotFollower | None:
    """Start the follower unless the services say not to (`follow=False`)."""
    if not services.follow:
        return None
    follower = BotFollower(services, bot)
    follower.start()
    log.info("VIP follower started (channel %s)", services.settings.vip_channel_id)
    return follower
