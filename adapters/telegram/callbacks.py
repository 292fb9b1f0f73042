"""What inline buttons carry, and how what comes back is checked.

Telegram returns a button's `callback_data` as the client sends it, so it is input like any
other: a client can send any string. Each factory's fields are typed and bounded, so a string
that does not unpack (unknown prefix, a value out of range, a forged id) matches no handler's
filter and reaches the fallback handler, which refuses politely and awards nothing. What a
valid button names is checked again against the state it claims to act on: a reaction counts
only on a post of the configured channel (the post is taken from the message the button is on,
never from the data), a story choice only on the fragment the player stands on now.
"""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

REACTIONS: tuple[str, ...] = ("❤️", "🔥", "😍", "😂")
"""The emoji of the reaction buttons under a channel post, in order."""

IDENTIFIER = r"^[A-Za-z0-9_\-]{1,24}$"
"""A story fragment's or choice's id as the bundled story spells them (64 bytes in all)."""


class ReactionButton(CallbackData, prefix="r"):
    """A reaction button under a channel post: the index of its emoji in `REACTIONS`."""

    emoji: Annotated[int, Field(ge=0, lt=len(REACTIONS))]

    @property
    def symbol(self) -> str:
        return REACTIONS[self.emoji]


class ChoiceButton(CallbackData, prefix="s"):
    """A story choice: the fragment it was shown on and the choice."""

    fragment: Annotated[str, Field(pattern=IDENTIFIER)]
    choice: Annotated[str, Field(pattern=IDENTIFIER)]


class VipBesitosButton(CallbackData, prefix="vb"):
    """Buy VIP with besitos (the price is the rule's, never the button's)."""


class ConsentButton(CallbackData, prefix="ac"):
    """The one-time age and consent confirmation before the VIP arc."""
