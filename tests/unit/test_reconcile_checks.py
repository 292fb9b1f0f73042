"""The row checks of reconciliation on hand-made rows: what each flags, what it lets pass, and
on which side (history or read model) `run_checks` puts a problem.

The integration tests break real stores; these pin each check's edges without a database.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dianabot.projections.reconcile import HISTORY, READ_MODEL, Findings, Side, run_checks
from dianabot.projections.reconcile.checks import (
    VIP_GRACE,
    check_badge_definitions,
    check_duplicate_badges,
    check_levels,
    check_negative_balances,
    check_orphaned_badges,
    check_story_references,
    check_vip_roles,
    latest_versions,
    row_problem,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def points(telegram_id: int, balance: int = 10, lifetime: int = 10, level: int = 1) -> dict:
    return {
        "player_id": uuid.uuid5(uuid.NAMESPACE_OID, str(telegram_id)),
        "telegram_id": telegram_id,
        "balance": balance,
        "lifetime": lifetime,
        "level": level,
    }


def held(telegram_id: int, slug: str, *, at: datetime = NOW, is_held: bool = True) -> dict:
    return {
        "award_id": uuid.uuid4(),
        "telegram_id": telegram_id,
        "badge_slug": slug,
        "held": is_held,
        "awarded_at": at,
    }


def definition(slug: str, retired_at: datetime | None = None) -> dict:
    return {"slug": slug, "retired_at": retired_at}


def version(slug: str, number: int, fragments: list[str]) -> dict:
    return {"slug": slug, "version": number, "fragment_ids": json.dumps(fragments)}


def state(telegram_id: int, slug: str, fragment: str) -> dict:
    return {
        "progress_id": uuid.uuid4(),
        "telegram_id": telegram_id,
        "story_slug": slug,
        "fragment_id": fragment,
    }


def vip(is_vip: bool, until: datetime | None) -> dict:
    return {"player_id": uuid.uuid4(), "is_vip": is_vip, "vip_until": until}


def keys(issues: list[tuple[str, str, str, dict[str, Any]]]) -> list[str]:
    return [key for _, key, _, _ in issues]


# ----- balances and levels ---------------------------------------------------------------------


def test_negative_balances_flags_below_zero_only() -> None:
    side = Side(player_points=[points(1, balance=-1), points(2, balance=0), points(3)])
    issues = check_negative_balances(side)
    assert [row["telegram_id"] for *_, row in issues] == [1]
    assert issues[0][0] == "player_points" and "balance of -1" in issues[0][2]


@pytest.mark.parametrize(
    ("lifetime", "level", "flagged"),
    [(0, 1, False), (99, 1, False), (100, 1, True), (100, 2, False), (-5, 1, False), (0, 2, True)],
)
def test_levels_follow_lifetime_besitos(lifetime: int, level: int, flagged: bool) -> None:
    side = Side(player_points=[points(1, lifetime=lifetime, level=level)])
    issues = check_levels(side)
    assert bool(issues) is flagged
    if flagged:
        assert f"is level {level}" in issues[0][2]


# ----- badges ----------------------------------------------------------------------------------


def test_duplicate_badges_counts_held_rows_per_user_and_slug() -> None:
    side = Side(
        badges_held=[
            held(1, "a"),
            held(1, "a"),
            held(1, "a", is_held=False),  # revoked: not held, not a duplicate
            held(1, "b"),
            held(2, "a"),
        ]
    )
    issues = check_duplicate_badges(side)
    assert keys(issues) == ["badges_held:1:a"]
    assert "2 times" in issues[0][2]


def test_badge_definitions_flag_unknown_and_awarded_after_retirement() -> None:
    retired = NOW - timedelta(days=1)
    side = Side(
        badges_held=[
            held(1, "ghost"),
            held(2, "old", at=NOW),  # after the retirement
            held(3, "old", at=retired - timedelta(days=1)),  # before: still valid
            held(6, "old", at=retired),  # the same instant, recorded before it: valid
            held(4, "ok"),
            held(5, "ghost", is_held=False),  # revoked rows are not checked
        ],
        badge_definitions=[definition("old", retired), definition("ok")],
    )
    issues = check_badge_definitions(side)
    assert [row["telegram_id"] for *_, row in issues] == [1, 2]
    assert "never defined" in issues[0][2] and "after it was retired" in issues[1][2]


def test_orphaned_badges_need_a_standing_award_in_the_replay() -> None:
    standing, orphan, revoked = held(1, "a"), held(1, "b"), held(1, "c")
    live = Side(badges_held=[standing, orphan, revoked])
    rebuilt = Side(badges_held=[standing, {**revoked, "held": False}])
    issues = check_orphaned_badges(live, rebuilt)
    assert keys(issues) == [f"badges_held:{row['award_id']}" for row in (orphan, revoked)]


# ----- story -----------------------------------------------------------------------------------


def test_latest_versions_keeps_the_highest_version_per_story() -> None:
    rows = [version("s", 1, ["a"]), version("s", 3, ["c"]), version("s", 2, ["b"])]
    assert latest_versions(rows)["s"]["version"] == 3


def test_story_references_check_the_published_version_only() -> None:
    side = Side(
        story_versions=[version("s", 1, ["a", "b"]), version("s", 2, ["a"])],
        story_state=[state(1, "s", "a"), state(2, "s", "b"), state(3, "gone", "a")],
    )
    issues = check_story_references(side)
    assert [row["telegram_id"] for *_, row in issues] == [2, 3]
    assert "version 2 of 's' does not have" in issues[0][2]
    assert "no published version" in issues[1][2]


# ----- VIP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_vip", "until", "flagged"),
    [
        (True, NOW + timedelta(days=1), False),
        (True, NOW - VIP_GRACE + timedelta(seconds=1), False),  # the expiry job may still run
        (True, NOW - VIP_GRACE, True),
        (True, None, True),
        (False, NOW + timedelta(seconds=1), True),
        (False, NOW, False),
        (False, None, False),
    ],
)
def test_vip_roles_agree_with_the_period(
    is_vip: bool, until: datetime | None, flagged: bool
) -> None:
    assert bool(check_vip_roles(Side(vip_members=[vip(is_vip, until)]), NOW)) is flagged


# ----- sides and row problems ------------------------------------------------------------------


def test_run_checks_puts_a_problem_the_replay_shows_in_the_history() -> None:
    in_both, live_only = points(1, balance=-3), points(2, balance=-4)
    findings = Findings()
    run_checks(
        findings,
        live=Side(player_points=[in_both, live_only]),
        rebuilt=Side(player_points=[in_both]),
        now=NOW,
    )
    where = {p.live["telegram_id"] if p.live else p.rebuilt["telegram_id"]: p.where
             for p in findings.problems}  # fmt: skip
    assert where == {1: HISTORY, 2: READ_MODEL}
    assert findings.checks["negative_balance"].count == 2
    assert findings.checks["negative_balance"].history == 1


def test_run_checks_takes_orphans_found_in_sql_instead_of_both_sides() -> None:
    orphan = held(1, "a")
    findings = Findings()
    run_checks(findings, Side(badges_held=[held(2, "b")]), Side(), NOW, orphans=[orphan])
    assert [p.key for p in findings.problems if p.check == "orphaned_badge"] == [
        f"badges_held:{orphan['award_id']}"
    ]


def test_findings_count_a_key_once_and_keep_a_few_examples() -> None:
    findings = Findings(max_examples=2)
    side = Side(player_points=[points(n, balance=-1) for n in range(5)])
    run_checks(findings, side, Side(), NOW)
    run_checks(findings, side, Side(), NOW)  # the same keys again: not counted twice
    result = findings.checks["negative_balance"]
    assert (result.count, len(result.examples)) == (5, 2)


def test_row_problem_says_how_a_row_differs() -> None:
    live, rebuilt = {"k": 1, "a": 1, "b": 2}, {"k": 1, "a": 1, "b": 3}
    assert row_problem("p", "t", 1, live, rebuilt).detail == "differs in b"
    assert row_problem("p", "t", 1, None, rebuilt).detail == "missing from the live table"
    assert row_problem("p", "t", (1, "x"), live, None).key == "t:1:x"
    assert row_problem("p", "t", 1, live, None, counted_only=True).live is None
