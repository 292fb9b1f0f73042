"""Reconciliation as a replay: rebuild the read models at a fixed position and diff them.

The old bot's reconciliation compared a table with itself. Here the history is the truth:

1. Fix a position P (the head of the log when the run starts) and replay 1..P into fresh shadow
   tables, then compare them with the live tables at the same position (`whole_log`).
2. Run every check of DOMAIN.md section 5 on both sides (`checks`). A problem the replay shows
   too is in the history (a domain-level problem); one only the live rows show is a read-model
   problem.
3. `fix=True`: read-model problems are repaired by swapping in the rebuilt tables (or, for one
   user, the rebuilt rows); history problems by the compensating commands the application
   decides on (`compensation`, `dianabot.application.repairs`), which add events. No event is
   ever edited or deleted.

Per-user mode (`one_user`) replays only that user's streams (player, story progress, badge
awards, plus the badge and story definitions the checks need), in log order, up to the live
rows' positions. `entry.reconcile` picks the mode; `report` holds what a run returns.
"""

from dianabot.projections.reconcile.checks import Side, run_checks
from dianabot.projections.reconcile.entry import reconcile
from dianabot.projections.reconcile.one_user import user_streams
from dianabot.projections.reconcile.report import (
    CHECKS,
    HISTORY,
    MAX_EXAMPLES,
    READ_MODEL,
    CheckResult,
    Findings,
    Fix,
    Problem,
    ReconcileReport,
    problems_for,
)

__all__ = [
    "CHECKS",
    "HISTORY",
    "MAX_EXAMPLES",
    "READ_MODEL",
    "CheckResult",
    "Findings",
    "Fix",
    "Problem",
    "ReconcileReport",
    "Side",
    "problems_for",
    "reconcile",
    "run_checks",
    "user_streams",
]
