"""`badges_held` (one row per award stream: who holds which badge, with its evidence) and
`badge_definitions` (the catalogue as the history defined, changed and retired it).

Revoked awards keep their row with `held = false`: a re-award arrives on the same stream without
repeating who and which badge.
"""

from __future__ import annotations

import json
from typing import Any

from dianabot.projections.base import Projector, originator_keys
from dianabot.projections.schema import json_list


class BadgesHeldProjector(Projector):
    name = "badges_held"
    tables = ("badges_held", "badge_definitions")

    AWARD_EVENTS = ("BadgeAwarded", "BadgeRevoked", "BadgeReawarded")
    BADGE_EVENTS = ("BadgeDefined", "BadgeChanged", "BadgeRetired")

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        held = self.rows["badges_held"]
        if not held.complete:
            held.load(originator_keys(events, self.AWARD_EVENTS))
        definitions = self.rows["badge_definitions"]
        if not definitions.complete:
            definitions.load(originator_keys(events, self.BADGE_EVENTS))

    # ----- definitions ------------------------------------------------------------------------

    def on_BadgeDefined(self, event: Any, position: int) -> None:
        self.rows["badge_definitions"].put(
            event.originator_id.int,
            {
                "badge_id": event.originator_id,
                "slug": event.slug,
                "name": event.name,
                "description": event.description,
                "icon": event.icon,
                "criteria": _criteria(event.criteria),
                "defined_at": event.timestamp,
                "retired_at": None,
                "retire_reason": None,
            },
        )

    def on_BadgeChanged(self, event: Any, position: int) -> None:
        rows = self.rows["badge_definitions"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return  # a change of a badge never defined: reported by reconciliation, not here
        row.update(
            name=event.name,
            description=event.description,
            icon=event.icon,
            criteria=_criteria(event.criteria),
        )
        rows.touch(event.originator_id.int)

    def on_BadgeRetired(self, event: Any, position: int) -> None:
        rows = self.rows["badge_definitions"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return
        row["retired_at"] = event.timestamp
        row["retire_reason"] = event.reason
        rows.touch(event.originator_id.int)

    # ----- awards -----------------------------------------------------------------------------

    def on_BadgeAwarded(self, event: Any, position: int) -> None:
        self.rows["badges_held"].put(
            event.originator_id.int,
            {
                "award_id": event.originator_id,
                "telegram_id": event.telegram_id,
                "badge_slug": event.badge_slug,
                "held": True,
                "awarded_at": event.timestamp,
                "evidence": json_list(event.evidence, sort=False),
                "revoked_at": None,
                "revoke_reason": None,
            },
        )

    def on_BadgeRevoked(self, event: Any, position: int) -> None:
        rows = self.rows["badges_held"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return
        row["held"] = False
        row["revoked_at"] = event.timestamp
        row["revoke_reason"] = event.reason
        rows.touch(event.originator_id.int)

    def on_BadgeReawarded(self, event: Any, position: int) -> None:
        rows = self.rows["badges_held"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return
        row["held"] = True
        row["awarded_at"] = event.timestamp
        row["evidence"] = json_list(event.evidence, sort=False)
        row["revoked_at"] = None
        row["revoke_reason"] = None
        rows.touch(event.originator_id.int)


def _criteria(criteria: dict[str, Any]) -> str:
    return json.dumps(criteria, sort_keys=True, separators=(",", ":"))
