"""`player_points`: each player's balance, lifetime earned besitos and level (what /profile shows).

Personal fields (`display_name`, `language_code`) are the events' `PersonalText` values: NULL
once the user is forgotten (`PlayerForgotten`, or a value whose key is gone), set again when
they come back (`PlayerReturned`).

The level is the one the history recorded (`LevelReached`), not recomputed here, so a
reconciliation can tell a level the domain got wrong from a row someone changed.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dianabot.projections.base import PerPlayerProjector, Row


class PlayerPointsProjector(PerPlayerProjector):
    name = "player_points"
    tables = ("player_points",)

    def new_row(self, originator_id: UUID) -> dict[str, Any]:
        return new_row(originator_id)

    def on_PlayerRegistered(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["telegram_id"] = event.telegram_id
        row["display_name"] = _text(event.display_name)
        row["language_code"] = _text(event.language_code)
        row["registered_at"] = event.timestamp
        row["updated_at"] = event.timestamp

    def on_PlayerForgotten(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["display_name"] = None
        row["language_code"] = None
        row["updated_at"] = event.timestamp

    def on_PlayerReturned(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["display_name"] = _text(event.display_name)
        row["language_code"] = _text(event.language_code)
        row["updated_at"] = event.timestamp

    def on_PointsAwarded(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["balance"] += event.amount
        row["lifetime"] += event.amount
        row["updated_at"] = event.timestamp

    def on_PointsSpent(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["balance"] -= event.amount
        row["updated_at"] = event.timestamp

    def on_PointsAdjusted(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["balance"] += event.amount
        if event.amount > 0:
            row["lifetime"] += event.amount
        row["updated_at"] = event.timestamp

    def on_LevelReached(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["level"] = event.level
        row["updated_at"] = event.timestamp


def _text(value: Any) -> str | None:
    """A personal value's text (None when erased); a plain string as it is."""
    return value if value is None or isinstance(value, str) else value.text


def new_row(player: UUID) -> Row:
    return {
        "player_id": player,
        "telegram_id": None,
        "display_name": None,
        "language_code": None,
        "balance": 0,
        "lifetime": 0,
        "level": 1,
        "registered_at": None,
        "updated_at": None,
    }
