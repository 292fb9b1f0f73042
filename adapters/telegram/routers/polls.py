"""Polls: `/poll QUESTION | OPTION | OPTION` (admins) sends a non-anonymous poll through the
bot (Telegram reports answers only for the bot's own polls); an answer earns per the rules."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import InputPollOption, Message, PollAnswer
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import name_of
from dianabot.adapters.telegram.texts import T
from dianabot.application.commands import AnswerPoll

log = logging.getLogger(__name__)


async def poll(message: Message, command: CommandObject, bot: Bot, gw: Gateway) -> None:
    user = message.from_user
    if user is None or not gw.is_admin(user.id):
        await message.answer(gw.texts(T.ADMIN_REFUSED))
        return
    parts = [p.strip() for p in (command.args or "").split("|")]
    question = parts[0]
    options: list[InputPollOption | str] = [p for p in parts[1:] if p]
    if not question or not 2 <= len(options) <= 10:
        await message.answer(gw.texts(T.POLL_USAGE))
        return
    chat = gw.settings.group_id if gw.settings.group_id is not None else message.chat.id
    await bot.send_poll(chat_id=chat, question=question, options=options, is_anonymous=False)
    await message.answer(gw.texts(T.POLL_SENT))


async def poll_answer(answer: PollAnswer, gw: Gateway) -> None:
    user = answer.user
    if user is None or user.is_bot:  # voted as a chat: anonymous, earns nothing
        return
    registration = await gw.register(user.id, name_of(user), user.language_code)
    if registration is not None and not (registration.ok or registration.outcome == "duplicate"):
        return
    result = await gw.issue(AnswerPoll(user.id, f"poll:{answer.poll_id}"), user.id)
    log.debug("poll answer of %s: %s", user.id, result.outcome)


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="polls")
    router.message.register(poll, Command("poll"))
    router.poll_answer.register(poll_answer)
    return router
