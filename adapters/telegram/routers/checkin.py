"""`/checkin`: the daily check-in, its streak and bonus, or how long until the next."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import points_awarded, refusal, registered
from dianabot.adapters.telegram.texts import T
from dianabot.application.coordinator import DailyCheckIn


async def checkin(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    refused = await registered(gw, user)
    if refused is not None:
        await message.answer(refusal(gw, refused))
        return
    result = await gw.execute(DailyCheckIn(telegram_id=user.id, origin=gw.origin(user.id)), user.id)
    if result.ok:
        streak = next((int(e.fields["streak"]) for e in result.events if e.name == "CheckedIn"), 1)
        text = gw.texts(
            T.CHECKIN_OK,
            points=points_awarded(result, "checkin"),
            streak=streak,
            days=gw.texts(T.DAY_ONE if streak == 1 else T.DAY_MANY),
        )
        bonus = points_awarded(result, "streak_bonus")
        if bonus:
            text = f"{text}\n{gw.texts(T.CHECKIN_BONUS, bonus=bonus)}"
        await message.answer(text)
    elif result.outcome == "already_checked_in" and result.retry_after is not None:
        await message.answer(gw.texts(T.CHECKIN_TOO_SOON, wait=gw.texts.wait(result.retry_after)))
    else:
        await message.answer(refusal(gw, result))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="checkin")
    router.message.register(checkin, Command("checkin"))
    return router
