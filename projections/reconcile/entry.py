"""The entry point: `reconcile(projections, user=..., fix=...)`, the whole log or one user."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

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
    return report
