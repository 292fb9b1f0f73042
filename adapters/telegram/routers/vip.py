"""`/vip`: the user's VIP state and how to get it; redeeming a token (`/start vip-<code>`)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import refusal
from dianabot.adapters.telegram.texts import T
from dianabot.application.commands import RedeemVipToken

TOKEN_REFUSALS = {
    "invalid_token": T.VIP_TOKEN_INVALID,
    "token_used": T.VIP_TOKEN_USED,
    "token_expired": T.VIP_TOKEN_EXPIRED,
}
DATE = "%d/%m/%Y"


async def redeem(gw: Gateway, user_id: int, token: str) -> str:
    """Redeem a VIP token for the user; the text to answer."""
    result = await gw.issue(RedeemVipToken(user_id, token), user_id)
    if result.ok:
        player = await gw.player(user_id)
        until = player.vip_until if player is not None else None
        return gw.texts(T.VIP_REDEEMED, until=f"{until:{DATE}}" if until else "—")
    if result.outcome in TOKEN_REFUSALS:
        return gw.texts(TOKEN_REFUSALS[result.outcome])
    return refusal(gw, result)


async def vip(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    player = await gw.player(user.id)
    until = player.vip_until if player is not None else None
    if until is None:
        await message.answer(gw.texts(T.VIP_INACTIVE))
    elif until > gw.now():
        await message.answer(gw.texts(T.VIP_ACTIVE, until=f"{until:{DATE}}"))
    else:
        await message.answer(gw.texts(T.VIP_EXPIRED, until=f"{until:{DATE}}"))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="vip")
    router.message.register(vip, Command("vip"))
    return router
