"""The entry point: `reconcile(projections, user=..., fix=...)`, the whole log or one user.

A full run's summary is recorded on the system's journal (`ReconciliationCompleted`, through
the application's bus), so health can say when the history was last checked and what it found
(`IncidentLog.last_reconciliation`). Best effort: a summary that cannot be recorded is logged,
and the report is returned all the same. Nothing is recorded for an empty log (there is no
store to speak of, and a read-only run must not make one).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from dianabot.application.commands import RecordReconciliation
from dianabot.application.results import Origin
from dianabot.projections.fold import Progress
from dianabot.projections.reconcile.one_user import reconcile_user
from dianabot.projections.reconcile.report import MAX_EXAMPLES, ReconcileReport
from dianabot.projections.reconcile.whole_log import reconcile_all

if TYPE_CHECKING:
    from dianabot.projections.service import Projections

log = logging.getLogger(__name__)


def reconcile(
    projections: Projections,
    *,
    user: int | None = None,
    fix: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    max_examples: int = MAX_EXAMPLES,
) -> ReconcileReport:
    """Replay, compare, check, and (with `fix`) repair. See the package docstring."""
    started = time.perf_counter()
    now = now or projections.app.clock.now()
    if user is not None:
        report = reconcile_user(projections, user, fix=fix, now=now, max_examples=max_examples)
    else:
        report = reconcile_all(projections, fix=fix, now=now, progress=progress,
                               max_examples=max_examples)  # fmt: skip
    report.seconds = time.perf_counter() - started
    log.info(
        "reconciliation at %s: %s (%d difference(s), %d fix(es))",
        report.position,
        "consistent" if report.consistent else "DIFFERENCES",
        report.differences,
        len(report.fixes),
    )
    if user is None:
        record_summary(projections, report)
    return report


def record_summary(projections: Projections, report: ReconcileReport) -> int | None:
    """`ReconciliationCompleted` for a full run (see the module docstring); the live read
    models are caught up to it. Returns its position, None if it was not recorded."""
    if report.position <= 0:
        return None
    command = RecordReconciliation(
        position=report.position,
        consistent=report.consistent,
        differences=report.differences,
        checks=tuple((name, check.count) for name, check in report.checks.items()),
        fixes=len(report.fixes),
        seconds=report.seconds,
    )
    origin = Origin.system("reconcile", f"summary:{report.position}:{uuid.uuid4().hex}")
    try:
        result = projections.app.bus.handle(command, origin)
    except Exception:
        log.warning("the reconciliation's summary was not recorded", exc_info=True)
        return None
    if not result.ok or not result.events:
        log.warning("the reconciliation's summary was not recorded: %s %s",
                    result.outcome, result.message)  # fmt: skip
        return None
    position = result.events[-1].position
    if position is not None:
        projections.catch_up(until=position)
    return position
