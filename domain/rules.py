"""The game's numbers: points per source, limits, and the level table (pure functions)."""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from dianabot.domain.errors import InvalidAmount, InvalidInput


class PointSource(StrEnum):
    """Where earned besitos come from (the `source` of `PointsAwarded`)."""

    REACTION = "reaction"
    MESSAGE = "message"
    POLL = "poll"
    CHECKIN = "checkin"
    STREAK_BONUS = "streak_bonus"
    STORY = "story"
    STORY_DECISION = "story_decision"


REACTION_POINTS = 10
MESSAGE_POINTS = 1
POLL_POINTS = 2
CHECKIN_POINTS = 10
STREAK_BONUS_POINTS = 25
STREAK_BONUS_EVERY = 7
STORY_DECISION_BONUS = 5
"""Besitos for the first decision a player takes in each chapter of a story (once per story and
chapter, forever: the story-decisions policy)."""

MESSAGE_COOLDOWN = timedelta(seconds=30)
CHECKIN_INTERVAL = timedelta(hours=24)
STREAK_KEEP_WITHIN = timedelta(hours=48)

VIP_INVITATION_PERIOD = timedelta(days=7)
"""A free player is invited to VIP at most once per this period (the vip-conversion policy)."""
VIP_INVITATION_WINDOW = timedelta(hours=1)
"""An invitation follows the VIP gate hit that prompted it: a hit older than this when the
policy sees it (the workers were down) invites no one."""

MAX_TELEGRAM_ID = 2**52 - 1
"""The largest Telegram user id. The Bot API documents user ids as having at most 52
significant bits (so a 64-bit integer or a double holds them exactly); they are positive."""

MAX_AMOUNT = 1_000_000
"""Sanity cap for any single award, adjustment or spend: larger numbers are typos or attacks."""


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    threshold: int


LEVELS: tuple[Level, ...] = (
    Level(1, "Novato", 0),
    Level(2, "Curioso", 100),
    Level(3, "Coqueto", 250),
    Level(4, "Atrevido", 500),
    Level(5, "Seductor", 1_000),
    Level(6, "Encantador", 2_000),
    Level(7, "Irresistible", 3_500),
    Level(8, "Leyenda", 6_000),
    Level(9, "Musa", 10_000),
    Level(10, "Cosmos", 14_500),
)
_THRESHOLDS = [level.threshold for level in LEVELS]


def level_for(lifetime_earned: int) -> Level:
    """Level is a pure function of lifetime earned besitos; spending never lowers it."""
    if lifetime_earned < 0:
        raise ValueError("lifetime earned besitos cannot be negative")
    return LEVELS[bisect_right(_THRESHOLDS, lifetime_earned) - 1]


def next_level(level: Level) -> Level | None:
    return LEVELS[level.number] if level.number < len(LEVELS) else None


def checked_amount(amount: object, cap: int | None = MAX_AMOUNT) -> int:
    """A positive whole number of besitos within the sanity cap, or InvalidAmount. `cap=None`
    for an amount something else bounds (a deduction is bounded by the balance)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"amount must be a whole number of besitos, got {amount!r}")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {amount}")
    if cap is not None and amount > cap:
        raise InvalidAmount(f"amount {amount} is over the cap of {cap}")
    return amount


DECISION_REFERENCE_PREFIX = "chapter:"


def decision_reference(story_slug: str, chapter: int) -> str:
    """The reference of the besitos for the first decision in a chapter (`PointsAwarded` of
    source `story_decision`): `chapter:<story>:<chapter>`, which the Player remembers forever."""
    if isinstance(chapter, bool) or not isinstance(chapter, int) or chapter <= 0:
        raise InvalidInput(f"chapter must be a positive whole number, got {chapter!r}")
    if not isinstance(story_slug, str) or not story_slug or " " in story_slug:
        raise InvalidInput(f"story slug must be a non-empty word, got {story_slug!r}")
    return f"{DECISION_REFERENCE_PREFIX}{story_slug}:{chapter}"


def checked_telegram_id(value: object, what: str = "telegram id") -> int:
    """A Telegram user id (1 to `MAX_TELEGRAM_ID`), or InvalidInput: anything else would be
    recorded and then break every read model that stores it as a 64-bit integer."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TELEGRAM_ID:
        raise InvalidInput(
            f"{what} must be a Telegram user id (1 to 2**52 - 1), got {value!r}",
            telegram_id=value,
        )
    return value


def without_controls(text: str) -> str:
    """`text` without control characters (NUL included: PostgreSQL cannot store it in text) and
    lone surrogates (not encodable as UTF-8); line breaks and tabs become spaces."""
    if text.isprintable():
        return text
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            if char in "\t\n\r\v\f":
                kept.append(" ")
        elif category != "Cs":
            kept.append(char)
    return "".join(kept)


def clean_text(value: object, max_length: int) -> str:
    """Free text from Telegram (a display name, a language code, a reason, a payment
    reference), cleaned rather than refused, so no user is locked out by an odd name: control
    characters removed, surrounding spaces trimmed, cut to `max_length`. "" if nothing is left
    (or it is not text)."""
    if not isinstance(value, str):
        return ""
    return without_controls(value).strip()[:max_length].strip()
