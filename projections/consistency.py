"""`application.ports.ConsistencyChecker` on the read side: the per-user reconciliation.

One user's streams are replayed into shadow rows and compared with their live rows at the same
positions (`reconcile.one_user`); the outcome says whether they agree, how many problems were
found, and a few of them. Nothing is repaired here (`dianabot reconcile --user ID --fix` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dianabot.application.ports import ConsistencyOutcome

if TYPE_CHECKING:
    from dianabot.projections.service import Projections

PROBLEMS_KEPT = 10
"""Problems described in an outcome (all are counted)."""


class ReplayConsistency:
    """Checks one user by replaying their history (see the module docstring)."""

    def __init__(self, projections: Projections) -> None:
        self.projections = projections

    def check(self, telegram_id: int) -> ConsistencyOutcome:
        report = self.projections.reconcile(user=telegram_id)
        problems = tuple(
            f"{p.check} in {p.projection} ({p.key}): {p.detail}"
            for p in report.problems[:PROBLEMS_KEPT]
        )
        return ConsistencyOutcome(
            telegram_id=telegram_id,
            consistent=report.consistent,
            differences=report.differences,
            position=report.position,
            problems=problems,
        )
