"""Channel reactions: a post in the configured channel gets reaction buttons
(`editMessageReplyMarkup`); pressing one is a callback query that runs a `React` and is
answered with `answerCallbackQuery`. The post is the message the button is on; a button on any
other chat, or data that does not unpack, awards nothing."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from dianabot.adapters.telegram.callbacks import REACTIONS, ReactionButton
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import FromUser, points_awarded, refusal, registered
from dianabot.adapters.telegram.texts import T
from dianabot.application.coordinator import React


def keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, emoji in enumerate(REACTIONS):
        builder.button(text=emoji, callback_data=ReactionButton(emoji=index))
    builder.adjust(len(REACTIONS))
    return builder.as_markup()


def post_reference(chat_id: int, message_id: int) -> str:
    return f"channel:{chat_id}:{message_id}"


async def channel_post(message: Message, bot: Bot, gw: Gateway) -> None:
    if gw.settings.channel_id is None or message.chat.id != gw.settings.channel_id:
        return
    await bot.edit_message_reply_markup(
        chat_id=message.chat.id, message_id=message.message_id, reply_markup=keyboard()
    )


async def react(query: CallbackQuery, callback_data: ReactionButton, gw: Gateway) -> None:
    message = query.message
    channel = gw.settings.channel_id
    if message is None or channel is None or message.chat.id != channel:
        await query.answer(gw.texts(T.REACTION_BAD_BUTTON))
        return
    user = query.from_user
    refused = await registered(gw, user)
    if refused is not None:
        await query.answer(refusal(gw, refused))
        return
    action = React(
        telegram_id=user.id,
        origin=gw.origin(user.id),
        post=post_reference(message.chat.id, message.message_id),
        emoji=callback_data.symbol,
    )
    result = await gw.execute(action, user.id)
    if result.ok:
        await query.answer(gw.texts(T.REACTION_OK, points=points_awarded(result)))
    elif result.outcome == "already_reacted":
        await query.answer(gw.texts(T.REACTION_ALREADY))
    else:
        await query.answer(refusal(gw, result))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="reactions")
    router.channel_post.register(channel_post)
    router.callback_query.register(react, ReactionButton.filter(), FromUser())
    return router
