"""What a reconciliation reports: the problems found, counted per check, and the fixes made.

Every module of the package writes into these types; the CLI and the demo render them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HISTORY = "history"
"""Where a problem is when the replay shows it too: in the events themselves."""
READ_MODEL = "read model"
"""Where a problem is when only the live rows show it: in a read model."""
MAX_EXAMPLES = 5

CHECKS: dict[str, str] = {
    "negative_balance": "balance below zero",
    "level_mismatch": "level differs from the one lifetime besitos give",
    "orphaned_badge": "badge held with no standing award event",
    "duplicate_badge": "badge held twice by one user",
    "badge_definition": "badge held whose definition is unknown, or retired before the award",
    "invalid_story_reference": "story state on a fragment the published story does not have",
    "vip_role": "VIP flag disagrees with the VIP period",
    "row_differs": "row differs from the replay (missing, extra or changed)",
    "projection_health": "projection failed, or could not be compared at one position",
    "corrupt_history": "stored event that cannot be decoded (the replay went past it)",
}


@dataclass
class Problem:
    """One thing wrong: which check found it, in which row, and on which side (`where`)."""

    check: str
    projection: str
    key: str
    where: str
    detail: str
    live: dict[str, Any] | None = None
    rebuilt: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "projection": self.projection,
            "key": self.key,
            "where": self.where,
            "detail": self.detail,
            "live": _jsonable(self.live),
            "rebuilt": _jsonable(self.rebuilt),
        }


@dataclass
class CheckResult:
    """One check's tally: how many problems, how many in the history, a few examples."""

    name: str
    description: str
    count: int = 0
    history: int = 0
    examples: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "description": self.description,
            "count": self.count,
            "in_history": self.history,
            "examples": [p.to_dict() for p in self.examples],
        }


@dataclass(frozen=True)
class Fix:
    """One repair made with `fix=True`: a table swap, rows replaced, or a command issued."""

    action: str
    target: str
    outcome: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass
class ReconcileReport:
    """A run's result, at the log position it compared (per projection in `positions`)."""

    position: int
    positions: dict[str, int]
    user: int | None
    checked_at: datetime
    checks: dict[str, CheckResult]
    seconds: float = 0.0
    fixes: list[Fix] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list, repr=False)

    @property
    def consistent(self) -> bool:
        return all(check.count == 0 for check in self.checks.values())

    @property
    def differences(self) -> int:
        return sum(check.count for check in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent,
            "position": self.position,
            "positions": self.positions,
            "user": self.user,
            "checked_at": self.checked_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "differences": self.differences,
            "checks": [check.to_dict() for check in self.checks.values()],
            "fixes": [fix.to_dict() for fix in self.fixes],
        }


class Findings:
    """Collects problems: one per (check, key), counted, a few kept as examples per check."""

    def __init__(self, max_examples: int = MAX_EXAMPLES) -> None:
        self.checks = {name: CheckResult(name, text) for name, text in CHECKS.items()}
        self.max_examples = max_examples
        self.problems: list[Problem] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, problem: Problem) -> None:
        if (problem.check, problem.key) in self._seen:
            return
        self._seen.add((problem.check, problem.key))
        self.problems.append(problem)
        result = self.checks[problem.check]
        result.count += 1
        if problem.where == HISTORY:
            result.history += 1
        if len(result.examples) < self.max_examples:
            result.examples.append(problem)


def problems_for(report: ReconcileReport, check: str) -> list[Problem]:
    """Every problem of one check (the report keeps all; examples are a few)."""
    return [p for p in report.problems if p.check == check]


def _jsonable(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    plain: dict[str, Any] = json.loads(json.dumps(row, default=str))
    return plain
