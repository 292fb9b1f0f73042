"""What no other router took: a button whose data does not unpack (forged, or from an older
version of the bot) gets a polite refusal and nothing else."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.texts import T


async def unknown_button(query: CallbackQuery, gw: Gateway) -> None:
    await query.answer(gw.texts(T.REFUSAL_UNKNOWN_BUTTON))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="fallback")
    router.callback_query.register(unknown_button)
    return router
