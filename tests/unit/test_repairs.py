"""Compensating commands: which use case each history defect calls for, with what arguments, and
how reconciliation's problems become those defects and its repairs become the report's fixes.

A fake stands in for the application and its bus (it offers exactly `RepairCommands`), so the
decision is pinned without a store; tests/integration/test_reconcile.py runs the real commands.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from dianabot.application.app import CONSOLE_ADMIN_ID
from dianabot.application.commands import Command, GrantPoints, RelocateProgress, RevokeBadge
from dianabot.application.repairs import (
    InvalidAward,
    NegativeBalance,
    OverdueVip,
    RepairCommands,
    StrandedProgress,
    compensate,
)
from dianabot.application.results import CommandResult, Origin
from dianabot.application.vip import VipExpiryRun
from dianabot.projections.reconcile import HISTORY, READ_MODEL, Problem
from dianabot.projections.reconcile.compensation import compensate_history, defect_of


class FakeCommands:
    """Records each command issued on its bus; answers ok (or the refusal it is told to)."""

    def __init__(self, outcome: str = "ok", vip_failed: dict[int, str] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.outcome = outcome
        self.vip_failed = vip_failed or {}

    @property
    def bus(self) -> FakeCommands:
        return self

    def handle(self, command: Command, origin: Origin) -> CommandResult:
        self.calls.append((command, origin))
        message = "moved" if isinstance(command, RelocateProgress) else ""
        return CommandResult(self.outcome, message=message)

    def expire_due_vips(self) -> VipExpiryRun:
        self.calls.append(("expire_due_vips",))
        return VipExpiryRun(expired=(7,), failed=self.vip_failed, position=1, watching=1)


def kinds(calls: list[tuple[Any, ...]]) -> list[str]:
    return [type(call[0]).__name__ if isinstance(call[0], Command) else call[0] for call in calls]


def test_the_fake_and_the_application_offer_the_repair_commands() -> None:
    from dianabot.adapters.eventstore.database import database_from_url
    from dianabot.application.service import DianaApplication

    assert isinstance(FakeCommands(), RepairCommands)
    app = DianaApplication(database_from_url("memory://").eventsourcing_env)
    try:
        assert isinstance(app, RepairCommands)
    finally:
        app.close()


def test_each_player_defect_gets_its_command_with_a_causation_per_finding() -> None:
    app = FakeCommands()
    defects = [
        NegativeBalance(1, -40, "negative_balance:k1:9"),
        StrandedProgress(2, "main", "invalid_story_reference:k2:9"),
        InvalidAward(3, "racha-3", "x" * 300, "badge_definition:k3:9"),
    ]
    done = compensate(app, defects)
    assert app.calls == [
        (GrantPoints(1, admin_id=CONSOLE_ADMIN_ID, amount=40,
                     reason="reconcile: restore a negative balance to zero"),
         Origin("job:reconcile:negative_balance:k1:9", "system:reconcile")),
        (RelocateProgress(2, "main"),
         Origin("job:reconcile:invalid_story_reference:k2:9", "system:reconcile")),
        (RevokeBadge("racha-3", 3, "reconcile: " + "x" * 200),
         Origin("job:reconcile:badge_definition:k3:9", "system:reconcile")),
    ]  # fmt: skip
    assert [done.repairs[d].command for d in defects] == [
        "grant_points",
        "relocate_progress",
        "revoke_badge",
    ]
    assert done.repairs[defects[1]].detail == "moved" and done.expiry is None


def test_overdue_vip_periods_share_one_run_of_the_expiry_job_after_the_others() -> None:
    app = FakeCommands()
    done = compensate(
        app,
        [
            OverdueVip(uuid.uuid4(), "a"),
            NegativeBalance(1, -1, "b"),
            OverdueVip(uuid.uuid4(), "c"),
        ],
    )
    assert kinds(app.calls) == ["GrantPoints", "expire_due_vips"]
    assert done.expiry is not None and done.expiry.outcome == "ok"
    assert done.expiry.detail == "expired [7]"
    failed = compensate(FakeCommands(vip_failed={8: "boom"}), [OverdueVip(uuid.uuid4(), "a")])
    assert failed.expiry is not None and failed.expiry.outcome == "failed"


def test_a_refused_command_is_reported_with_its_code() -> None:
    done = compensate(FakeCommands("badge_not_held"), [InvalidAward(1, "a", "why", "r")])
    assert [r.outcome for r in done.repairs.values()] == ["badge_not_held"]


# ----- from reconciliation's problems ----------------------------------------------------------


def history(check: str, key: str, row: dict[str, Any], detail: str = "") -> Problem:
    return Problem(check, "p", key, HISTORY, detail, None, row)


def test_problems_become_defects_only_when_the_application_has_a_repair() -> None:
    pid = uuid.uuid4()
    assert defect_of(history("vip_role", "v", {"player_id": pid, "is_vip": True}), 5) == (
        OverdueVip(pid, "vip_role:v:5")
    )
    assert defect_of(history("vip_role", "v", {"player_id": pid, "is_vip": False}), 5) is None
    no_user = {"telegram_id": None, "balance": -1}  # the column is nullable: no user to grant to
    assert defect_of(history("negative_balance", "n", no_user), 5) is None
    assert defect_of(history("level_mismatch", "l", {"telegram_id": 1}), 5) is None
    assert defect_of(Problem("negative_balance", "p", "n", HISTORY, ""), 5) is None


def test_compensate_history_reports_a_fix_per_problem_in_order_and_the_expiry_last() -> None:
    app = FakeCommands()
    problems = [
        history("vip_role", "vip_members:x", {"player_id": uuid.uuid4(), "is_vip": True}),
        history("level_mismatch", "player_points:y", {"telegram_id": 1}),
        Problem("negative_balance", "p", "player_points:z", READ_MODEL, "", {"balance": -1}),
        history("invalid_story_reference", "story_state:w",
                {"telegram_id": 2, "story_slug": "main"}),
    ]  # fmt: skip
    fixes = compensate_history(app, problems, 11)
    assert [(f.action, f.target, f.outcome) for f in fixes] == [
        ("none", "player_points:y", "not fixed"),
        ("relocate_progress", "story_state:w", "ok"),
        ("expire_due_vips", "vip_members", "ok"),
    ]
    assert fixes[0].detail == "no compensating command for level_mismatch"
    assert kinds(app.calls) == ["RelocateProgress", "expire_due_vips"]


def test_compensate_history_refuses_an_app_without_the_repair_commands() -> None:
    with pytest.raises(TypeError, match="repair commands"):
        compensate_history(object(), [], 1)
