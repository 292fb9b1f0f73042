"""Which badge criteria a player's state satisfies (pure; the badge policies decide from this)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dianabot.domain.player import Player
from dianabot.domain.progress import StoryProgress

PLAYER_CRITERIA = frozenset(
    {"first_points", "lifetime_besitos", "checkin_streak", "reactions", "vip_active"}
)
"""Criteria decided by the Player aggregate alone; story criteria need StoryProgress."""


def player_satisfies(criteria: dict[str, Any], player: Player, at: datetime) -> bool:
    kind = criteria.get("kind")
    if kind == "first_points":
        return player.lifetime_earned > 0
    if kind == "lifetime_besitos":
        threshold: int = criteria["threshold"]
        return player.lifetime_earned >= threshold
    if kind == "checkin_streak":
        days: int = criteria["days"]
        return player.streak >= days
    if kind == "reactions":
        count: int = criteria["count"]
        return len(player.reacted_posts) >= count
    if kind == "vip_active":
        return player.vip_active(at)
    return False


STORY_CRITERIA = frozenset({"first_decision", "chapter_completed"})
"""Criteria decided by one StoryProgress: `progress_satisfies`."""


def progress_satisfies(criteria: dict[str, Any], progress: StoryProgress | None) -> bool:
    if progress is None:
        return False
    kind = criteria.get("kind")
    if kind == "first_decision":
        return progress.decisions > 0
    if kind == "chapter_completed":
        chapter: int = criteria["chapter"]
        return chapter in progress.chapters_completed
    return False
