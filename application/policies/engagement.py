"""Engagement: on a reaction, the `reactions` badges (the catalogue's `reacciones-10`, and every
badge an admin defines later with that kind) the player's count of posts reacted to reached.

The counts live in the Player (`reacted_posts`; the `engagement` read model shows them). Only
reactions have a badge kind: group messages and poll answers earn none, so the policy does not
read them (a kind for them would be added to `handles` here).
"""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import Command
from dianabot.application.policies.base import BadgePolicy

KINDS = frozenset({"reactions"})


class Engagement(BadgePolicy):
    name = "engagement"
    handles = frozenset({"ReactionRecorded"})

    def earn(self, event: Any) -> Command | None:
        slugs = self.directory.slugs(KINDS)
        owner = self.owner(event) if slugs else None
        if owner is None:
            return None
        return self.award_due(owner, slugs, event)
