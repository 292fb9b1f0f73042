"""`application.ports.IncidentLog` on the read side, over the `incidents` read model.

Health asks it for the parked events not resolved yet (per policy) and the last full
reconciliation; operators (`dianabot policies status|retry`) for the parked events themselves,
and for the failures and consistency checks recorded. Each answer is one indexed query.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dianabot.application.ports import IncidentLog
from dianabot.domain.incidents import PARKED
from dianabot.projections.schema import from_json_list
from sqlalchemy import desc, func, select

if TYPE_CHECKING:
    from dianabot.projections.service import Projections


class Incidents:
    """The incidents read model's questions (an `IncidentLog`)."""

    def __init__(self, projections: Projections) -> None:
        self.projections = projections

    def parked_counts(self) -> dict[str, int]:
        """Parked events not resolved yet, by policy (policies with none are absent)."""
        table = self.projections.table("parked_events")
        statement = (
            select(table.c.policy, func.count())
            .where(table.c.state == PARKED)
            .group_by(table.c.policy)
        )
        with self.projections.store.read() as conn:
            return {policy: int(count) for policy, count in conn.execute(statement)}

    def last_reconciliation(self) -> dict[str, Any] | None:
        """The last full reconciliation's summary: `at` (ISO time), `position` (the log
        position it compared at), `consistent`, `differences`, `checks` ({check: count}),
        `fixes`, `seconds`, and `recorded_at` (the summary's own position)."""
        table = self.projections.table("reconciliations")
        statement = select(table).order_by(desc(table.c.position)).limit(1)
        with self.projections.store.read() as conn:
            row = conn.execute(statement).mappings().first()
        if row is None:
            return None
        return {
            "at": row["completed_at"].isoformat(),
            "position": row["checked_position"],
            "consistent": row["consistent"],
            "differences": row["differences"],
            "checks": json.loads(row["checks"]),
            "fixes": row["fixes"],
            "seconds": row["milliseconds"] / 1000,
            "recorded_at": row["position"],
        }

    def parked(
        self, *, policy: str | None = None, position: int | None = None, unresolved: bool = True
    ) -> list[dict[str, Any]]:
        """Parked events, oldest first (by log position), optionally one policy's or one
        position's; only those not resolved unless `unresolved` is False."""
        table = self.projections.table("parked_events")
        statement = select(table).order_by(table.c.position, table.c.policy)
        if unresolved:
            statement = statement.where(table.c.state == PARKED)
        if policy is not None:
            statement = statement.where(table.c.policy == policy)
        if position is not None:
            statement = statement.where(table.c.position == position)
        with self.projections.store.read() as conn:
            return [dict(row) for row in conn.execute(statement).mappings()]

    def command_failures(
        self, *, telegram_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest recorded command failures, newest first."""
        table = self.projections.table("command_failures")
        statement = select(table).order_by(desc(table.c.position)).limit(limit)
        if telegram_id is not None:
            statement = statement.where(table.c.telegram_id == telegram_id)
        with self.projections.store.read() as conn:
            return [dict(row) for row in conn.execute(statement).mappings()]

    def consistency_checks(
        self, *, telegram_id: int | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The latest consistency checks of users, newest first (problems as a list)."""
        table = self.projections.table("consistency_checks")
        statement = select(table).order_by(desc(table.c.position)).limit(limit)
        if telegram_id is not None:
            statement = statement.where(table.c.telegram_id == telegram_id)
        with self.projections.store.read() as conn:
            rows = [dict(row) for row in conn.execute(statement).mappings()]
        for row in rows:
            row["problems"] = from_json_list(row["problems"])
        return rows


def incident_log(incidents: Incidents) -> IncidentLog:
    """`Incidents` as the application's port (type-checked here)."""
    return incidents
