"""`vip_members`: each player's VIP flag and period (who may read the VIP arc, who to remove
from the VIP channel). The flag follows the history: set by `VipGranted`, cleared by `VipExpired`;
reconciliation checks it against the period's end."""

from __future__ import annotations

from typing import Any

from projections.base import Projector, Row, originator_keys


class VipMembersProjector(Projector):
    name = "vip_members"
    tables = ("vip_members",)

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        rows = self.rows["vip_members"]
        if not rows.complete:
            rows.load(originator_keys(events, self.handlers))

    def _row(self, event: Any) -> Row:
        rows = self.rows["vip_members"]
        key = event.originator_id.int
        row = rows.get(key)
        if row is None:
            row = rows.put(
                key,
                {
                    "player_id": event.originator_id,
                    "is_vip": False,
                    "vip_until": None,
                    "source": None,
                    "last_reference": None,
                    "grants": 0,
                    "first_granted_at": None,
                    "expired_at": None,
                },
            )
        else:
            rows.touch(key)
        return row

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

    def on_VipExpired(self, event: Any, position: int) -> None:
        row = self._row(event)
        row["is_vip"] = False
        row["expired_at"] = event.timestamp
