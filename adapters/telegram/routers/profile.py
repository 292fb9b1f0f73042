"""`/start [vip-<code>]`, `/help`, `/profile`, `/badges`, `/top`."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.routers.common import name_of, refusal
from dianabot.adapters.telegram.routers.vip import redeem
from dianabot.adapters.telegram.texts import T
from dianabot.domain.rules import LEVELS
from dianabot.domain.vip import TOKEN_PREFIX


async def start(message: Message, command: CommandObject, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    result = await gw.register(user.id, name_of(user), user.language_code, force=True)
    assert result is not None
    if not (result.ok or result.outcome == "duplicate"):
        await message.answer(refusal(gw, result))
        return
    key = T.START_WELCOME if result.events else T.START_WELCOME_BACK
    await message.answer(gw.texts(key, name=name_of(user)))
    payload = (command.args or "").strip()
    if payload.startswith(TOKEN_PREFIX):
        await message.answer(await redeem(gw, user.id, payload))


async def help_(message: Message, gw: Gateway) -> None:
    text = gw.texts(T.HELP_TEXT)
    if message.from_user is not None and gw.is_admin(message.from_user.id):
        text = f"{text}\n\n{gw.texts(T.HELP_ADMIN)}"
    await message.answer(text)


def badge_lines(gw: Gateway, held: list[dict[str, object]]) -> list[str]:
    return [
        gw.texts(
            T.BADGES_ITEM, icon=row.get("icon") or "🏅", name=row.get("name") or row["badge_slug"]
        )
        for row in held
    ]


async def profile(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    found = await gw.profile(user.id)
    if found is None:
        await message.answer(gw.texts(T.PROFILE_UNKNOWN))
        return
    held = badge_lines(gw, await gw.badges(user.id))
    level = int(found["level"])
    await message.answer(
        gw.texts(
            T.PROFILE_TEXT,
            name=found.get("display_name") or name_of(user),
            balance=found["balance"],
            lifetime=found["lifetime"],
            level=level,
            level_name=LEVELS[max(0, min(level, len(LEVELS)) - 1)].name,
            badges=", ".join(held) if held else gw.texts(T.PROFILE_NO_BADGES),
        )
    )


async def badges(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    held = badge_lines(gw, await gw.badges(user.id))
    if not held:
        await message.answer(gw.texts(T.BADGES_NONE))
        return
    await message.answer(gw.texts(T.BADGES_LIST, badges="\n".join(held)))


async def top(message: Message, gw: Gateway) -> None:
    user = message.from_user
    if user is None:
        return
    rows = await gw.top(user.id)
    if not rows:
        await message.answer(gw.texts(T.TOP_EMPTY))
        return
    lines = [
        gw.texts(
            T.TOP_ITEM,
            rank=row["rank"],
            name=row.get("display_name") or gw.texts(T.TOP_ANONYMOUS),
            points=row["points"],
        )
        for row in rows
    ]
    await message.answer("\n".join([gw.texts(T.TOP_TITLE), *lines]))


def build() -> Router:
    """A fresh router of this feature (a router belongs to one dispatcher)."""
    router = Router(name="profile")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(profile, Command("profile"))
    router.message.register(badges, Command("badges"))
    router.message.register(top, Command("top"))
    return router
