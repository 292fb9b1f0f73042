"""Streak badges: on a check-in, the `checkin_streak` badges its streak reached.

The catalogue's `racha-3`, `racha-7` and `racha-30`, and every badge an admin defines later
with that criteria kind. The check-in's own streak is the evidence: a policy that lags behind
judges the check-in it reacts to, so a streak broken since (a later check-in after a gap)
still earns the badge it reached (`AwardEarnedBadges.streak`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dianabot.application.commands import Command
from dianabot.application.policies.base import BadgePolicy

KINDS = frozenset({"checkin_streak"})


def reached(criteria: Mapping[str, Mapping[str, Any]], streak: int) -> tuple[str, ...]:
    """The streak badges (criteria by slug) a streak of `streak` check-ins has reached."""
    return tuple(
        slug
        for slug, spec in criteria.items()
        if spec.get("kind") == "checkin_streak" and streak >= spec.get("days", 0) > 0
    )


class StreakBadges(BadgePolicy):
    name = "streak-badges"
    handles = frozenset({"CheckedIn"})

    def earn(self, event: Any) -> Command | None:
        slugs = reached(self.directory.criteria(KINDS), event.streak)
        if not slugs:  # most check-ins: no command, not even a load
            return None
        owner = self.owner(event)
        if owner is None:
            return None
        return self.award_due(owner, slugs, event, streak=event.streak)
