"""`/story`: the player's current fragment with a button per choice; pressing one takes it and
the same message is edited to the next fragment. A button from a fragment the player has left
(stale) or naming a choice they were not offered (forged) is refused politely, taking nothing.

The age and consent gate: the VIP arc is flirtatious, so a VIP who has not confirmed (once, a
button: `ConfirmAdult`, recorded as `AdultContentConfirmed`) is stopped politely at its door:
the choice into it, or a VIP fragment shown by `/story`, shows the gate instead, and the story
goes on from the same place once they confirm. The gate is the bot's: it is where the content is
shown.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from dianabot.adapters.telegram.callbacks import ChoiceButton, ConsentButton
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import FromUser, refusal, registered
from dianabot.adapters.telegram.texts import T
from dianabot.application.commands import ConfirmAdult, StartStory
from dianabot.application.coordinator import (
    AccessVipStory,
    CompleteFragment,
    PaidDecision,
    StoryAction,
)
from dianabot.application.narrative import ChoiceView, StoryView


def render(gw: Gateway, view: StoryView) -> tuple[str, InlineKeyboardMarkup | None]:
    """The fragment's text and its choice buttons."""
    if view.locked:
        return gw.texts(T.STORY_LOCKED), None
    text = gw.texts(
        T.STORY_FRAGMENT,
        chapter=view.chapter,
        chapter_title=view.chapter_title,
        speaker=view.speaker,
        text=view.text,
    )
    if view.is_ending or not view.choices:
        text = f"{text}\n\n{gw.texts(T.STORY_ENDING)}"
    if not view.choices:  # an ending may still offer a way on (the free arc's into the VIP arc)
        return text, None
    keyboard = InlineKeyboardBuilder()
    for choice in view.choices:
        keyboard.button(
            text=label(gw, view, choice),
            callback_data=ChoiceButton(fragment=view.fragment_id, choice=choice.id),
        )
    keyboard.adjust(1)
    return text, keyboard.as_markup()


def gate(gw: Gateway) -> tuple[str, InlineKeyboardMarkup]:
    """The age and consent gate: its text and its one button."""
    keyboard = InlineKeyboardBuilder()
    keyboard.button(text=gw.texts(T.GATE_BUTTON), callback_data=ConsentButton())
    return gw.texts(T.GATE_TEXT), keyboard.as_markup()


async def needs_consent(gw: Gateway, user_id: int) -> bool:
    player = await gw.player(user_id)
    return player is not None and not player.adult_confirmed


def label(gw: Gateway, view: StoryView, choice: ChoiceView) -> str:
    if (choice.vip_only or choice.leads_to_vip) and not view.vip_active:
        return gw.texts(T.STORY_CHOICE_VIP, label=choice.label)
    if choice.cost > 0:
        return gw.texts(T.STORY_CHOICE_COST, label=choice.label, cost=choice.cost)
    return choice.label


def action_for(gw: Gateway, user_id: int, choice: ChoiceView) -> StoryAction:
    """The coordinator's action for a choice: what the player meant (every rule is checked by
    the command all the same)."""
    kind: type[StoryAction] = CompleteFragment
    if choice.vip_only or choice.leads_to_vip:
        kind = AccessVipStory
    elif choice.cost > 0:
        kind = PaidDecision
    return kind(telegram_id=user_id, origin=gw.origin(user_id), choice_id=choice.id)


async def story(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    refused = await registered(gw, user)
    if refused is not None:
        await message.answer(refusal(gw, refused))
        return
    started = await gw.issue(StartStory(user.id), user.id)
    if started.outcome == "story_not_published":
        await message.answer(gw.texts(T.STORY_NOT_PUBLISHED))
        return
    if not (started.ok or started.outcome == "duplicate"):
        await message.answer(refusal(gw, started))
        return
    view = await gw.story(user.id)
    if view is None:
        await message.answer(gw.texts(T.STORY_NOT_PUBLISHED))
        return
    if view.vip_fragment and not view.locked and await needs_consent(gw, user.id):
        text, gated = gate(gw)
        await message.answer(text, reply_markup=gated)
        return
    text, keyboard = render(gw, view)
    await message.answer(text, reply_markup=keyboard)


async def show(
    bot: Bot, gw: Gateway, query: CallbackQuery, view: StoryView | None, answer: str
) -> None:
    """Answer the button, and edit its message to the fragment the player stands on now."""
    await query.answer(answer)
    message = query.message
    if view is None or message is None:
        return
    text, keyboard = render(gw, view)
    await bot.edit_message_text(
        text=text, chat_id=message.chat.id, message_id=message.message_id, reply_markup=keyboard
    )


async def choose(query: CallbackQuery, callback_data: ChoiceButton, bot: Bot, gw: Gateway) -> None:
    user_id = query.from_user.id
    view = await gw.story(user_id)
    if view is None or view.fragment_id != callback_data.fragment or view.locked:
        await show(bot, gw, query, view, gw.texts(T.STORY_STALE))
        return
    choice = next((c for c in view.choices if c.id == callback_data.choice), None)
    if choice is None:
        await show(bot, gw, query, view, gw.texts(T.STORY_INVALID_CHOICE))
        return
    into_vip = choice.vip_only or choice.leads_to_vip or view.vip_fragment
    if into_vip and view.vip_active and await needs_consent(gw, user_id):
        await query.answer()
        if query.message is not None:
            text, gated = gate(gw)
            await bot.edit_message_text(
                text=text,
                chat_id=query.message.chat.id,
                message_id=query.message.message_id,
                reply_markup=gated,
            )
        return
    result = await gw.execute(action_for(gw, user_id, choice), user_id)
    if result.ok:
        await show(bot, gw, query, await gw.story(user_id), gw.texts(T.STORY_ADVANCED))
    elif result.outcome == "vip_required":
        await query.answer(gw.texts(T.STORY_VIP_REQUIRED), show_alert=True)
    elif result.outcome == "insufficient_points":
        cost = result.details.get("cost", choice.cost)
        balance = result.details.get("balance", view.balance)
        await query.answer(
            gw.texts(T.STORY_INSUFFICIENT_POINTS, cost=cost, balance=balance), show_alert=True
        )
    elif result.outcome == "clue_required":
        await query.answer(gw.texts(T.STORY_CLUE_REQUIRED), show_alert=True)
    elif result.outcome == "invalid_choice":
        await show(bot, gw, query, await gw.story(user_id), gw.texts(T.STORY_INVALID_CHOICE))
    else:
        await query.answer(refusal(gw, result))


async def consent(query: CallbackQuery, bot: Bot, gw: Gateway) -> None:
    """The gate's button: recorded once, then the story where the player stands."""
    user_id = query.from_user.id
    result = await gw.issue(ConfirmAdult(user_id), user_id)
    if not (result.ok or result.outcome == "duplicate"):
        await query.answer(refusal(gw, result))
        return
    await show(bot, gw, query, await gw.story(user_id), gw.texts(T.GATE_CONFIRMED))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="story")
    router.message.register(story, Command("story"))
    router.callback_query.register(choose, ChoiceButton.filter(), FromUser())
    router.callback_query.register(consent, ConsentButton.filter(), FromUser())
    return router
