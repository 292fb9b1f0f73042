"""Group participation: a message in the configured group earns per the rules (its cooldown
included). Quietly: the group is a conversation, not a place for the bot's receipts."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.types import Message
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import registered
from dianabot.application.coordinator import ParticipateInGroup

log = logging.getLogger(__name__)


async def group_message(message: Message, gw: Gateway) -> None:
    user = message.from_user
    group = gw.settings.group_id
    if group is None or message.chat.id != group or user is None or user.is_bot:
        return
    if message.sender_chat is not None:  # posted as a channel or an anonymous admin
        return
    if await registered(gw, user) is not None:
        return
    action = ParticipateInGroup(
        telegram_id=user.id,
        origin=gw.origin(user.id),
        message=f"group:{message.chat.id}:{message.message_id}",
    )
    result = await gw.execute(action, user.id)
    log.debug("group message of %s: %s", user.id, result.outcome)


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="group")
    router.message.register(group_message)
    return router
