"""`engagement`: per player counts of reactions, group messages, poll answers and check-ins,
with the current and best check-in streak (the engagement policy and admins read it)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dianabot.projections.base import PerPlayerProjector


class EngagementProjector(PerPlayerProjector):
    name = "engagement"
    tables = ("engagement",)

    def new_row(self, originator_id: UUID) -> dict[str, Any]:
        return {
            "player_id": originator_id,
            "reactions": 0,
            "messages": 0,
            "polls": 0,
            "checkins": 0,
            "streak": 0,
            "best_streak": 0,
            "last_active_at": None,
        }

    def on_PlayerRegistered(self, event: Any, position: int) -> None:
        self._row(event)

    def on_ReactionRecorded(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["reactions"] += 1
        row["last_active_at"] = event.timestamp

    def on_MessageCounted(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["messages"] += 1
        row["last_active_at"] = event.timestamp

    def on_PollAnswered(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["polls"] += 1
        row["last_active_at"] = event.timestamp

    def on_CheckedIn(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["checkins"] += 1
        row["streak"] = event.streak
        if event.streak > row["best_streak"]:
            row["best_streak"] = event.streak
        row["last_active_at"] = event.timestamp
