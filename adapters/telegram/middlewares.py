"""Middlewares: the context every handler is handed, and the guard around each update.

`ContextMiddleware` (outer, on updates) puts a `Gateway` for the update in the handler data as
`gw`: handlers take `gw: Gateway` and reach the coordinator and the read models through it,
with the update's origin; nothing is global. It also keeps an update that cannot be handled
(an unknown kind, a handler's bug) from escaping the dispatcher: it is logged and dropped, and
the bot goes on with the next one. Refusals and an unavailable store never raise: the bus turns
them into results the handlers answer politely. A read that meets a store that is down (the
read models live in the same database) is answered politely here, and the update's `Receipt`
says it was not recorded, so the polling loop has it delivered again once the store is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from dianabot.adapters.telegram.context import BotServices, Gateway, Receipt
from dianabot.adapters.telegram.replies import tell
from dianabot.adapters.telegram.texts import T
from dianabot.application.breaker import CONNECTION_ERRORS, StoreUnavailable
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

STORE_DOWN: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    *CONNECTION_ERRORS,
    OperationalError,
    InterfaceError,
)
"""What a read raises when the database cannot be reached (the event store's and the read
models' driver errors)."""


class ContextMiddleware(BaseMiddleware):
    """Hands each update's handlers a `Gateway` (as `gw`), and contains their failures."""

    def __init__(self, services: BotServices) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        bot = data.get("bot")
        if not isinstance(event, Update) or not isinstance(bot, Bot):
            return await handler(event, data)
        receipt = data.get("receipt")
        if not isinstance(receipt, Receipt):
            receipt = Receipt(event.update_id)
        data["gw"] = Gateway(self.services, event.update_id, bot.id, receipt)
        if self.services.monitor is not None:
            self.services.monitor.seen_update()
        try:
            return await handler(event, data)
        except STORE_DOWN as error:
            receipt.unrecorded = True
            log.warning("update %s met an unavailable store: %s", event.update_id, error)
            await self._apologise(bot, event, data)
            return UNHANDLED
        except TelegramAPIError as error:  # an answer Telegram refused: what was done stays
            log.warning("update %s: Telegram refused an answer: %s", event.update_id, error)
            return UNHANDLED
        except Exception:
            log.exception("update %s could not be handled; dropped", event.update_id)
            return UNHANDLED

    async def _apologise(self, bot: Bot, update: Update, data: dict[str, Any]) -> None:
        try:
            text = self.services.texts(T.REFUSAL_UNAVAILABLE)
            await tell(bot, update, data.get("event_chat"), text)
        except Exception as error:  # the answer is a courtesy; the update is retried anyway
            log.info("could not tell update %s's sender: %s", update.update_id, error)
