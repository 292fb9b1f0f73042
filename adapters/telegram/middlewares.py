"""Middlewares: the context every handler is handed, and the guard around each update.

`ContextMiddleware` (outer, on updates) puts a `Gateway` for the update in the handler data as
`gw`: handlers take `gw: Gateway` and reach the coordinator and the read models through it,
with the update's origin; nothing is global. It also keeps an update that cannot be handled
(an unknown kind, a handler's bug) from escaping the dispatcher: it is logged and dropped, and
the bot goes on with the next one. Refusals and an unavailable store never raise: the bus turns
them into results the handlers answer politely.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from dianabot.adapters.telegram.context import BotServices, Gateway

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class ContextMiddleware(BaseMiddleware):
    """Hands each update's handlers a `Gateway` (as `gw`), and contains their failures."""

    def __init__(self, services: BotServices) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        bot = data.get("bot")
        if not isinstance(event, Update) or not isinstance(bot, Bot):
            return await handler(event, data)
        data["gw"] = Gateway(self.services, event.update_id, bot.id)
        if self.services.monitor is not None:
            self.services.monitor.seen_update()
        try:
            return await handler(event, data)
        except Exception:
            log.exception("update %s could not be handled; dropped", event.update_id)
            return UNHANDLED
