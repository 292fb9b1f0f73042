"""Which badge criteria a player's state satisfies (pure; the badge policies decide from this)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dianabot.domain.player import Player

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
