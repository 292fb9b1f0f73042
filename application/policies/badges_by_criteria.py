"""Badges by criteria: every defined badge whose criteria an event may have made true.

Points (first besitos; 100, 500 and 1,000 lifetime besitos) and completed chapters, and every
badge an admin defines later with such criteria (`manual` badges are awarded by hand). The
other criteria kinds have policies of their own (streaks, decisions, reactions, VIP), so each
event is looked at by the policy that owns its kind.
"""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import Command
from dianabot.application.policies.base import BadgePolicy

KINDS = frozenset({"first_points", "lifetime_besitos", "chapter_completed"})


class BadgesByCriteria(BadgePolicy):
    name = "badges-by-criteria"
    handles = frozenset({"PointsAwarded", "PointsAdjusted", "ChapterCompleted"})

    def earn(self, event: Any) -> Command | None:
        owner = self.owner(event)
        if owner is None:
            return None
        story = ""
        if type(event).__name__ == "ChapterCompleted":
            kinds = frozenset({"chapter_completed"})
            progress = self.app._load(event.originator_id)
            if progress is None:
                return None
            story = progress.story_slug
        else:
            kinds = KINDS - {"chapter_completed"}
        return self.award_due(owner, self.directory.slugs(kinds), event, story)
