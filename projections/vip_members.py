"""`vip_members`: each player's VIP flag and period (who may read the VIP arc, who to remove
from the VIP channel). The flag follows the history: set by `VipGranted`, cleared by `VipExpired`
(a refund's `VipShortened` moves the end);
reconciliation checks it against the period's end."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from dianabot.projections.base import PerPlayerProjector


class VipMembersProjector(PerPlayerProjector):
    name = "vip_members"
    tables = ("vip_members",)

    def new_row(self, originator_id: UUID) -> dict[str, Any]:
        return {
            "player_id": originator_id,
            "is_vip": False,
            "vip_until": None,
            "source": None,
            "last_reference": None,
            "grants": 0,
            "first_granted_at": None,
            "expired_at": None,
        }

    def on_VipGranted(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["is_vip"] = True
        row["vip_until"] = event.until
        row["source"] = event.source
        row["last_reference"] = event.reference
        row["grants"] += 1
        if row["first_granted_at"] is None:
            row["first_granted_at"] = event.timestamp
        row["expired_at"] = None

    def on_VipShortened(self, event: Any, position: int) -> None:
        """A refund took days back: the period ends earlier (its `VipExpired`, if that ended
        it, comes in the same transaction)."""
        row = self._row(event)
        row["vip_until"] = event.until
        row["last_reference"] = event.reference

    def on_VipExpired(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["is_vip"] = False
        row["expired_at"] = event.timestamp
