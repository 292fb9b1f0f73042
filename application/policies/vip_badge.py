"""The VIP badge, held exactly while VIP is active: awarded on a grant, revoked on expiry.

The catalogue's `el-divan` and every badge an admin defines later with criteria `vip_active`.
Both effects judge the player's state when they run, not the event alone, so a policy that
lags never contradicts the present:
- `VipGranted`: award the badges not held if VIP is active now (a grant that extends an active
  period finds the badge held and issues nothing; a grant whose period has ended since awards
  nothing);
- `VipExpired`: revoke the badges held if VIP is not active now (`RevokeLapsedBadges`; a grant
  after the expiry, which made VIP active again, keeps the badge). A badge not held is nothing
  to revoke: no command.
"""

from __future__ import annotations

from typing import Any

from dianabot.application.commands import Command, RevokeLapsedBadges
from dianabot.application.handlers.badges import lapsed_badges
from dianabot.application.policies.base import BadgePolicy, evidence

KINDS = frozenset({"vip_active"})


class VipBadge(BadgePolicy):
    name = "vip-badge"
    handles = frozenset({"VipGranted", "VipExpired"})

    def earn(self, event: Any) -> Command | None:
        slugs = self.directory.slugs(KINDS)
        owner = self.owner(event) if slugs else None
        if owner is None:
            return None
        if type(event).__name__ == "VipGranted":
            return self.award_due(owner, slugs, event)
        now = self.app.clock.now()
        if not lapsed_badges(self.app, owner, slugs, now, self.directory.definition):
            return None
        return RevokeLapsedBadges(owner, slugs, evidence(event))
