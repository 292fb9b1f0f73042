"""Helpers the feature routers share: who is speaking, and a refusal in Diana's words."""

from __future__ import annotations

import re

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User
from dianabot.adapters.telegram.context import Gateway
from dianabot.adapters.telegram.texts import T
from dianabot.application.coordinator import ActionResult
from dianabot.application.results import CommandResult

NUMBER = re.compile(r"[0-9]{1,18}")
"""A number the bot reads from text a user controls (a command's argument, a payload, a link's
name): ASCII digits, short enough for `int` (`str.isdecimal` takes other scripts' digits, and a
5000-digit string is beyond Python's conversion limit: a traceback, not a refusal)."""

REFUSALS: dict[str, T] = {
    "duplicate": T.REFUSAL_DUPLICATE,
    "unavailable": T.REFUSAL_UNAVAILABLE,
    "unknown_user": T.REFUSAL_UNKNOWN_USER,
    "not_admin": T.REFUSAL_NOT_ADMIN,
}


class FromUser(Filter):
    """The event has a sender (`F.from_user`, as a coroutine: aiogram runs a plain callable
    filter, a magic filter included, in a worker thread, a thread hop per update)."""

    async def __call__(self, event: TelegramObject) -> bool:
        return getattr(event, "from_user", None) is not None


def refusal(gw: Gateway, result: ActionResult | CommandResult) -> str:
    """The polite text of a refusal no handler answers more precisely."""
    return gw.texts(REFUSALS.get(result.outcome, T.REFUSAL_OTHER))


def name_of(user: User) -> str:
    return user.full_name or user.username or str(user.id)


async def registered(gw: Gateway, user: User) -> ActionResult | None:
    """Register the user (once per process); a refusal (None when all is well) to answer."""
    result = await gw.register(user.id, name_of(user), user.language_code)
    if result is None or result.ok or result.outcome == "duplicate":
        return None
    return result


def points_awarded(result: ActionResult, *sources: str) -> int:
    """The besitos a result's `PointsAwarded` events gave (of `sources`, or all)."""
    return sum(
        int(event.fields["amount"])
        for event in result.events
        if event.name == "PointsAwarded" and (not sources or str(event.fields["source"]) in sources)
    )


def number(text: str) -> int | None:
    """`text` as a `NUMBER`, or None."""
    return int(text) if NUMBER.fullmatch(text) else None
