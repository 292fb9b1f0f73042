"""The bot: a `Dispatcher` with one router per feature, and the `Bot` that talks to a Bot API.

`build_dispatcher(services)` is the whole bot; the same code runs against Telegram, a
self-hosted Bot API server and the local one of the tests and the demo (`make_bot`'s
`api_server`, aiogram's own `TelegramAPIServer`). On startup it publishes its commands
(`setMyCommands`). Telegram's "retry after" answer (429) is waited out and the call repeated
(`RetryAfterMiddleware`, on the bot's session). A user flooding the bot is throttled
(`limits.ThrottleMiddleware`, after the context middleware).
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import BotCommand
from dianabot.adapters.telegram.context import CURRENT_RECEIPT, BotServices
from dianabot.adapters.telegram.followers import start_follower
from dianabot.adapters.telegram.limits import ThrottleMiddleware
from dianabot.adapters.telegram.middlewares import ContextMiddleware
from dianabot.adapters.telegram.routers import (
    admin,
    checkin,
    fallback,
    group,
    polls,
    profile,
    reactions,
    story,
    vip,
)
from dianabot.adapters.telegram.texts import T, Texts

log = logging.getLogger(__name__)

COMMANDS: tuple[tuple[str, T], ...] = (
    ("start", T.COMMAND_START),
    ("profile", T.COMMAND_PROFILE),
    ("checkin", T.COMMAND_CHECKIN),
    ("story", T.COMMAND_STORY),
    ("badges", T.COMMAND_BADGES),
    ("top", T.COMMAND_TOP),
    ("vip", T.COMMAND_VIP),
    ("help", T.COMMAND_HELP),
    ("paysupport", T.COMMAND_PAYSUPPORT),
)
"""The commands everyone sees in Telegram's menu (admin commands stay out of it)."""

MAX_RETRY_AFTER = 60.0
"""A 429 asking to wait longer than this (seconds) is raised, not waited out."""


def routers() -> list[Router]:
    """The feature routers, in the order they are tried (commands before the group's chatter,
    the fallback for unknown buttons last)."""
    modules = (admin, polls, profile, checkin, story, vip, reactions, group, fallback)
    return [module.build() for module in modules]


def bot_commands(texts: Texts) -> list[BotCommand]:
    return [BotCommand(command=name, description=texts(key)) for name, key in COMMANDS]


def build_dispatcher(services: BotServices) -> Dispatcher:
    """The bot: feature routers, the context middleware, `setMyCommands` on startup."""
    dispatcher = Dispatcher(name="diana")
    dispatcher.update.outer_middleware(ContextMiddleware(services))
    if services.throttle is not None:
        text = services.texts(T.REFUSAL_THROTTLED)
        throttle = ThrottleMiddleware(services.throttle, text, services.is_admin)
        dispatcher.update.outer_middleware(throttle)
    dispatcher.include_routers(*routers())

    async def on_startup(bot: Bot) -> None:
        await bot.set_my_commands(bot_commands(services.texts))
        if services.monitor is not None:
            services.monitor.running = True
        services.follower = await start_follower(services, bot)

    async def on_shutdown() -> None:
        if services.monitor is not None:
            services.monitor.running = False
        if services.follower is not None:
            await services.follower.stop()
            services.follower = None

    dispatcher.startup.register(on_startup)
    dispatcher.shutdown.register(on_shutdown)
    return dispatcher


class RetryAfterMiddleware(BaseRequestMiddleware):
    """Wait out Telegram's 429 `retry_after` and call again (up to `attempts` times)."""

    def __init__(self, attempts: int = 3, max_wait: float = MAX_RETRY_AFTER) -> None:
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if attempt == self.attempts or error.retry_after > self.max_wait:
                    raise
                receipt = CURRENT_RECEIPT.get()
                if receipt is not None:  # the poller need not wait for this update any longer
                    receipt.defer()
                log.warning(
                    "%s: Telegram asks to retry after %s s (attempt %s)",
                    method.__api_method__,
                    error.retry_after,
                    attempt,
                )
                await asyncio.sleep(error.retry_after)
        raise AssertionError("unreachable")


def make_bot(token: str, api_server: str | None = None) -> Bot:
    """A `Bot` on aiohttp, against `api_server` (a Bot API server's base URL) or Telegram's."""
    session = (
        AiohttpSession(api=TelegramAPIServer.from_base(api_server))
        if api_server
        else AiohttpSession()
    )
    session.middleware(RetryAfterMiddleware())
    return Bot(token, session=session)
