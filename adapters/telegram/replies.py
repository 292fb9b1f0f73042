"""A short answer to an update that no handler answers (throttled, or the store is down)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.types import Chat, Update


async def tell(bot: Bot, update: Update, chat: Any, text: str) -> None:
    """As the answer to a button press, or as a message in a private chat; otherwise nothing
    (a group or a channel is not told about one user's trouble)."""
    if update.callback_query is not None:
        await bot.answer_callback_query(update.callback_query.id, text=text)
    elif update.message is not None and isinstance(chat, Chat) and chat.type == "private":
        await bot.send_message(chat.id, text)
