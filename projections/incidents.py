"""`incidents`: what the system recorded about its own trouble, for operators and health.

- `parked_events`: each event a policy gave up on (`EventParked`), its error and attempts
  (`ParkedEventRetryFailed` adds one), and whether a retry resolved it (`ParkedEventResolved`);
- `command_failures`: each command that failed for a reason other than a rule (`CommandFailed`);
- `consistency_checks`: what each check of one user found (`ConsistencyChecked`);
- `reconciliations`: each full reconciliation's summary (`ReconciliationCompleted`).

Every row comes from the events alone (no clock, no lookups), so a rebuild or a reconciliation
compares it like any other read model. `projections.incident_log.Incidents` answers the
questions asked of it (`application.ports.IncidentLog`).
"""

from __future__ import annotations

import json
from typing import Any

from dianabot.domain.incidents import PARKED
from dianabot.projections.base import Projector, originator_keys
from dianabot.projections.schema import json_list, utc


class IncidentsProjector(Projector):
    name = "incidents"
    tables = ("parked_events", "command_failures", "consistency_checks", "reconciliations")

    def prefetch(self, events: list[tuple[int, str, Any]]) -> None:
        parked = self.rows["parked_events"]
        if not parked.complete:
            parked.load(originator_keys(events, ("ParkedEventResolved", "ParkedEventRetryFailed")))

    def on_EventParked(self, event: Any, position: int) -> None:
        self.rows["parked_events"].put(
            event.originator_id.int,
            {
                "parked_id": event.originator_id,
                "policy": event.policy,
                "position": event.position,
                "event_name": event.event_name,
                "stream_id": str(event.stream_id),
                "stream_version": event.stream_version,
                "error": event.error,
                "attempts": event.attempts,
                "parked_at": utc(event.timestamp),
                "state": PARKED,
                "resolved_at": None,
                "outcome": None,
            },
        )

    def on_ParkedEventRetryFailed(self, event: Any, position: int) -> None:
        rows = self.rows["parked_events"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return  # never parked: reconciliation's business
        row["attempts"] = event.attempts
        row["error"] = event.error
        rows.touch(event.originator_id.int)

    def on_ParkedEventResolved(self, event: Any, position: int) -> None:
        rows = self.rows["parked_events"]
        row = rows.get(event.originator_id.int)
        if row is None:
            return
        row["state"] = "resolved"
        row["resolved_at"] = utc(event.timestamp)
        row["outcome"] = event.outcome
        rows.touch(event.originator_id.int)

    def on_CommandFailed(self, event: Any, position: int) -> None:
        self.rows["command_failures"].put(
            position,
            {
                "position": position,
                "failed_at": utc(event.timestamp),
                "command": event.command,
                "command_key": event.key,
                "telegram_id": event.telegram_id,
                "outcome": event.outcome,
                "message": event.message,
                "causation": event.causation,
                "requested_by": event.requested_by,
                "stream": event.stream,
                "version": event.version,
            },
        )

    def on_ConsistencyChecked(self, event: Any, position: int) -> None:
        self.rows["consistency_checks"].put(
            position,
            {
                "position": position,
                "checked_at": utc(event.timestamp),
                "telegram_id": event.telegram_id,
                "consistent": event.consistent,
                "differences": event.differences,
                "checked_position": event.position,
                "problems": json_list(event.problems, sort=False),
                "causation": event.causation,
                "actor": event.actor,
            },
        )

    def on_ReconciliationCompleted(self, event: Any, position: int) -> None:
        self.rows["reconciliations"].put(
            position,
            {
                "position": position,
                "completed_at": utc(event.timestamp),
                "checked_position": event.position,
                "consistent": event.consistent,
                "differences": event.differences,
                "checks": json.dumps(dict(event.checks), sort_keys=True, separators=(",", ":")),
                "fixes": event.fixes,
                "milliseconds": round(float(event.seconds) * 1000),
            },
        )
