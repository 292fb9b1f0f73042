"""`leaderboard`: besitos earned per player, all time (`period = 'all'`) and per ISO week.

Earned means awarded plus positive admin adjustments (what counts towards the level); spending
does not lower a rank. The week is the UTC ISO week of the event's timestamp, so the weekly board
of a past week never changes and a replay gives the same rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dianabot.projections.base import Projector

ALL_TIME = "all"

_weeks: dict[int, str] = {}


def week_of(moment: datetime) -> str:
    """`2026-W05`: the UTC ISO week (cached per day, as millions of events share few days)."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    day = moment.toordinal()
    week = _weeks.get(day)
    if week is None:
        year, number, _ = moment.isocalendar()
        week = _weeks[day] = f"{year}-W{number:02d}"
    return week


class LeaderboardProjector(Projector):
    name = "leaderboard"
    tables = ("leaderboard",)

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        rows = self.rows["leaderboard"]
        if rows.complete:
            return
        keys: set[tuple[str, int]] = set()
        for _, _, event in events:
            keys.add((ALL_TIME, event.originator_id.int))
            keys.add((week_of(event.timestamp), event.originator_id.int))
        rows.load(keys)

    def _add(self, player: UUID, at: datetime, amount: int) -> None:
        rows = self.rows["leaderboard"]
        number = player.int
        for period in (ALL_TIME, week_of(at)):
            key = (period, number)
            row = rows.get(key)
            if row is None:
                rows.put(key, {"period": period, "player_id": player, "points": amount})
            else:
                row["points"] += amount
                rows.touch(key)

    def on_PointsAwarded(self, event: Any, position: int) -> None:
        self._add(event.originator_id, event.timestamp, event.amount)

    def on_PointsAdjusted(self, event: Any, position: int) -> None:
        if event.amount > 0:
            self._add(event.originator_id, event.timestamp, event.amount)
