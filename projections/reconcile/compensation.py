"""The fix step for problems in the history: translate them into the application's repairs.

A problem the replay shows too is in the events, so only new events compensate it. Which
command does that is the application's decision (`application.repairs`); this module only turns
the report's problems into the plain data the application takes, and its repairs into `Fix`
entries of the report, in the problems' order (the expiry job, shared, last).
"""

from __future__ import annotations

from dianabot.application.repairs import (
    Defect,
    InvalidAward,
    NegativeBalance,
    OverdueVip,
    RepairCommands,
    StrandedProgress,
    compensate,
)
from dianabot.projections.reconcile.report import HISTORY, Fix, Problem


def compensate_history(app: object, problems: list[Problem], position: int) -> list[Fix]:
    """Issue the commands that add the events the history is missing; never edit or delete one.

    `app` must offer the repair commands (`RepairCommands`); `position` is the log position the
    problems were found at, part of each command's causation.
    """
    if not isinstance(app, RepairCommands):
        raise TypeError(f"{type(app).__name__} does not offer the repair commands")
    history = [
        (problem, defect_of(problem, position))
        for problem in problems
        if problem.where == HISTORY and problem.rebuilt is not None
    ]
    done = compensate(app, [defect for _, defect in history if defect is not None])
    fixes: list[Fix] = []
    for problem, defect in history:
        if defect is None:
            detail = f"no compensating command for {problem.check}"
            fixes.append(Fix("none", problem.key, "not fixed", detail))
        elif (repair := done.repairs.get(defect)) is not None:
            fixes.append(Fix(repair.command, problem.key, repair.outcome, repair.detail))
    if (expiry := done.expiry) is not None:
        fixes.append(Fix(expiry.command, "vip_members", expiry.outcome, expiry.detail))
    return fixes


def defect_of(problem: Problem, position: int) -> Defect | None:
    """The application's name for a problem in the history; None if it has no repair for it,
    or the replay has no row to repair from."""
    row = problem.rebuilt
    if row is None:
        return None
    reference = f"{problem.check}:{problem.key}:{position}"
    if problem.check == "vip_role":
        return OverdueVip(row["player_id"], reference) if row["is_vip"] else None
    if problem.check == "invalid_story_reference":
        return StrandedProgress(row["telegram_id"], row["story_slug"], reference)
    if problem.check == "badge_definition":
        return InvalidAward(row["telegram_id"], row["badge_slug"], problem.detail, reference)
    if problem.check == "negative_balance" and row["telegram_id"] is not None:
        return NegativeBalance(row["telegram_id"], row["balance"], reference)
    return None
