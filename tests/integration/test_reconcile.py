"""Reconciliation on every store: each check of DOMAIN.md section 5, found and repaired.

Each test breaks one thing the way that check detects it: either the live read model (a row
changed, added or removed behind the projector's back) or the history itself (events written
straight to the store, bypassing the aggregates' rules). It then asserts the report names the
check (with the right side: read model or history), that `fix=True` repairs it, and that a second
run is consistent. A fix never edits or deletes an event.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.crafted import CraftedWriter
from dianabot.adapters.story_file import parse_story
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.badge import BadgeAward
from dianabot.domain.cause import Cause
from dianabot.domain.ids import badge_award_id, player_id, progress_id, story_id
from dianabot.domain.player import Player
from dianabot.projections.reconcile import HISTORY, READ_MODEL, ReconcileReport, problems_for
from dianabot.projections.service import Projections
from sqlalchemy import delete, insert, update

from tests.conftest import ADMIN_ID
from tests.integration.test_projections import (
    ANA,
    BRUNO,
    CARLA,
    SLUG,
    all_rows,
    head,
    ok,
    play,
    rows,
    tg,
)
from tests.samples import SMALL_STORY_WITHOUT_B as STORY_WITHOUT_B

DANI = 104


@pytest.fixture
def projections(services: Services, clock: ManualClock) -> Projections:
    play(services.app, clock)
    assert services.projections is not None
    services.projections.catch_up()
    return services.projections


def counts(report: ReconcileReport) -> dict[str, int]:
    return {name: check.count for name, check in report.checks.items() if check.count}


def where(report: ReconcileReport, check: str) -> set[str]:
    return {problem.where for problem in problems_for(report, check)}


def change(projections: Projections, base: str, values: dict[str, Any], **match: Any) -> None:
    table = projections.table(base)
    with projections.store.write() as conn:
        statement = update(table).values(**values)
        for column, value in match.items():
            statement = statement.where(table.c[column] == value)
        assert conn.execute(statement).rowcount == 1


def add_row(projections: Projections, base: str, row: dict[str, Any]) -> None:
    with projections.store.write() as conn:
        conn.execute(insert(projections.table(base)).values(**row))


def stored(services: Services) -> list[tuple[int, bytes]]:
    return [(n.id, n.state) for n in services.app.recorder.select_notifications(1, 100_000)]


def fixed_and_clean(projections: Projections, **scope: Any) -> ReconcileReport:
    """Run with --fix, then again: the second run must be consistent."""
    report = projections.reconcile(fix=True, **scope)
    assert not report.consistent and report.fixes
    assert all(fix.outcome == "ok" for fix in report.fixes), report.fixes
    again = projections.reconcile(**scope)
    assert again.consistent, counts(again)
    return report


def test_an_untouched_history_is_consistent(projections: Projections) -> None:
    started_at = head(projections.app)
    report = projections.reconcile()
    assert report.consistent and report.differences == 0
    assert report.position == started_at  # (its summary was recorded after it)
    assert set(report.positions.values()) == {report.position}
    assert projections.reconcile(user=ANA).consistent
    payload = report.to_dict()
    assert payload["consistent"] and {c["check"] for c in payload["checks"]} >= {
        "negative_balance",
        "level_mismatch",
        "orphaned_badge",
        "duplicate_badge",
        "badge_definition",
        "invalid_story_reference",
        "vip_role",
        "row_differs",
    }


# ----- balances and levels -------------------------------------------------------------------


@pytest.mark.parametrize("scope", [{}, {"user": ANA}], ids=["all", "user"])
def test_negative_balance_in_the_read_model(projections: Projections, scope: dict) -> None:
    change(projections, "player_points", {"balance": -5}, telegram_id=ANA)
    report = projections.reconcile(**scope)
    assert counts(report) == {"negative_balance": 1, "row_differs": 1}
    assert where(report, "negative_balance") == {READ_MODEL}
    example = report.checks["row_differs"].examples[0]
    assert example.detail == "differs in balance" and example.live["balance"] == -5
    fixed_and_clean(projections, **scope)
    assert rows(projections, "player_points")[player_id(ANA)]["balance"] > 0


def test_negative_balance_in_the_history_is_compensated(
    services: Services, projections: Projections, clock: ManualClock
) -> None:
    balance = services.app.get_player(CARLA).balance
    writer = CraftedWriter(services.app)
    writer.append(Player.PointsSpent, player_id(CARLA), clock.now(), purpose="old_bot",
                  amount=balance + 40, reference="race")  # fmt: skip
    writer.flush()
    projections.catch_up()
    before = stored(services)
    report = projections.reconcile()
    assert counts(report) == {"negative_balance": 1}
    assert where(report, "negative_balance") == {HISTORY}
    fixed = fixed_and_clean(projections)
    assert [f.action for f in fixed.fixes] == ["grant_points"]
    assert services.app.get_player(CARLA).balance == 0
    assert stored(services)[: len(before)] == before  # only appended to


@pytest.mark.parametrize("scope", [{}, {"user": BRUNO}], ids=["all", "user"])
def test_level_mismatch(projections: Projections, scope: dict) -> None:
    change(projections, "player_points", {"level": 7}, telegram_id=BRUNO)
    report = projections.reconcile(**scope)
    assert counts(report) == {"level_mismatch": 1, "row_differs": 1}
    assert "level 7" in report.checks["level_mismatch"].examples[0].detail
    fixed_and_clean(projections, **scope)


# ----- badges ------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [{}, {"user": BRUNO}], ids=["all", "user"])
def test_orphaned_badge(projections: Projections, scope: dict, clock: ManualClock) -> None:
    add_row(
        projections,
        "badges_held",
        {
            "award_id": uuid.uuid4(),
            "telegram_id": BRUNO,
            "badge_slug": "besitos-500",
            "held": True,
            "awarded_at": clock.now(),
            "evidence": "[]",
        },
    )
    report = projections.reconcile(**scope)
    assert counts(report) == {"orphaned_badge": 1, "row_differs": 1}
    assert report.checks["row_differs"].examples[0].detail.startswith("in the live table")
    fixed_and_clean(projections, **scope)
    assert not [r for r in rows(projections, "badges_held").values() if r["telegram_id"] == BRUNO]


@pytest.mark.parametrize("scope", [{}, {"user": ANA}], ids=["all", "user"])
def test_duplicate_badge(projections: Projections, scope: dict, clock: ManualClock) -> None:
    add_row(
        projections,
        "badges_held",
        {
            "award_id": uuid.uuid4(),
            "telegram_id": ANA,
            "badge_slug": "besitos-100",
            "held": True,
            "awarded_at": clock.now(),
            "evidence": "[]",
        },
    )
    report = projections.reconcile(**scope)
    assert counts(report) == {"duplicate_badge": 1, "orphaned_badge": 1, "row_differs": 1}
    assert (
        "holds badge 'besitos-100' 2 times" in report.checks["duplicate_badge"].examples[0].detail
    )
    fixed_and_clean(projections, **scope)


@pytest.mark.parametrize("scope", [{}, {"user": ANA}], ids=["all", "user"])
def test_badge_with_an_unknown_definition_in_the_read_model(
    projections: Projections, scope: dict
) -> None:
    change(
        projections, "badges_held", {"badge_slug": "no-such-badge"},
        award_id=badge_award_id("besitos-100", ANA),
    )  # fmt: skip
    report = projections.reconcile(**scope)
    assert counts(report) == {"badge_definition": 1, "row_differs": 1}
    assert "never defined" in report.checks["badge_definition"].examples[0].detail
    assert where(report, "badge_definition") == {READ_MODEL}
    fixed_and_clean(projections, **scope)


@pytest.mark.parametrize("scope", [{}, {"user": BRUNO}], ids=["all", "user"])
def test_badge_awarded_after_its_retirement_is_revoked(
    services: Services, projections: Projections, clock: ManualClock, scope: dict
) -> None:
    ok(services.app.retire_badge("racha-3", "replaced", Origin.admin(ADMIN_ID)))
    clock.advance(minutes=1)
    writer = CraftedWriter(services.app)  # a racing award the domain would now refuse
    writer.append(BadgeAward.BadgeAwarded, badge_award_id("racha-3", BRUNO), clock.now(),
                  badge_slug="racha-3", telegram_id=BRUNO, evidence=["event:x:1"])  # fmt: skip
    writer.flush()
    projections.catch_up()
    report = projections.reconcile(**scope)
    assert counts(report) == {"badge_definition": 1}
    assert where(report, "badge_definition") == {HISTORY}
    assert "after it was retired" in report.checks["badge_definition"].examples[0].detail
    fixed = fixed_and_clean(projections, **scope)
    assert [f.action for f in fixed.fixes] == ["revoke_badge"]
    assert not rows(projections, "badges_held")[badge_award_id("racha-3", BRUNO)]["held"]


# ----- story --------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [{}, {"user": ANA}], ids=["all", "user"])
def test_story_state_on_an_unknown_fragment_in_the_read_model(
    projections: Projections, scope: dict
) -> None:
    change(projections, "story_state", {"fragment_id": "zz"}, progress_id=progress_id(ANA, SLUG))
    report = projections.reconcile(**scope)
    assert counts(report) == {"invalid_story_reference": 1, "row_differs": 1}
    assert "'zz'" in report.checks["invalid_story_reference"].examples[0].detail
    fixed_and_clean(projections, **scope)


@pytest.mark.parametrize("scope", [{}, {"user": DANI}], ids=["all", "user"])
def test_a_new_story_version_that_removed_a_users_fragment_is_compensated(
    services: Services, projections: Projections, clock: ManualClock, scope: dict
) -> None:
    app = services.app
    ok(app.register_player(DANI, "Dani", tg(DANI)))
    ok(app.start_story(DANI, tg(DANI), SLUG))
    ok(app.make_choice(DANI, "a_b", tg(DANI), SLUG))  # DANI stands on b
    # Version 2 removes b, published without the application's relocation step (as an older
    # release of the bot did): the history now has a player on a fragment that is gone.
    versions = app.repository.get(story_id(SLUG))
    versions.publish(
        parse_story(STORY_WITHOUT_B, "v2.yaml"), Cause("crafted", "admin:42", clock.now())
    )
    app.save(versions)
    projections.catch_up()
    report = projections.reconcile(**scope)
    assert counts(report) == {"invalid_story_reference": 1}
    assert where(report, "invalid_story_reference") == {HISTORY}
    assert "stands on 'b'" in report.checks["invalid_story_reference"].examples[0].detail
    fixed = fixed_and_clean(projections, **scope)
    assert [f.action for f in fixed.fixes] == ["relocate_progress"]
    assert rows(projections, "story_state")[progress_id(DANI, SLUG)]["fragment_id"] == "a"


# ----- VIP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [{}, {"user": BRUNO}], ids=["all", "user"])
def test_vip_flag_off_during_the_period_in_the_read_model(
    projections: Projections, scope: dict
) -> None:
    change(projections, "vip_members", {"is_vip": False}, player_id=player_id(BRUNO))
    report = projections.reconcile(**scope)
    assert counts(report) == {"vip_role": 1, "row_differs": 1}
    assert where(report, "vip_role") == {READ_MODEL}
    fixed_and_clean(projections, **scope)


@pytest.mark.parametrize("scope", [{}, {"user": BRUNO}], ids=["all", "user"])
def test_vip_period_ended_without_expiry_is_expired(
    services: Services, projections: Projections, clock: ManualClock, scope: dict
) -> None:
    clock.advance(days=31)  # BRUNO's 30 days are over; the expiry job never ran
    report = projections.reconcile(**scope)
    assert counts(report) == {"vip_role": 1}
    assert where(report, "vip_role") == {HISTORY}
    assert "no VipExpired" in report.checks["vip_role"].examples[0].detail
    fixed = fixed_and_clean(projections, **scope)
    assert [f.action for f in fixed.fixes] == ["expire_due_vips"]
    assert not rows(projections, "vip_members")[player_id(BRUNO)]["is_vip"]


def test_a_period_just_ended_is_within_the_expiry_jobs_grace(
    services: Services, projections: Projections, clock: ManualClock
) -> None:
    until = services.app.get_player(BRUNO).vip_until
    clock.set(until + timedelta(minutes=6))  # ended minutes ago: the job simply has not run yet
    assert projections.reconcile().consistent
    clock.set(until + timedelta(hours=1))
    assert counts(projections.reconcile()) == {"vip_role": 1}


# ----- rows, health, scope, concurrency ----------------------------------------------------


@pytest.mark.parametrize("scope", [{}, {"user": ANA}], ids=["all", "user"])
def test_a_missing_row(projections: Projections, scope: dict) -> None:
    table = projections.table("leaderboard")
    with projections.store.write() as conn:
        conn.execute(
            delete(table).where(table.c.player_id == player_id(ANA), table.c.period == "all")
        )
    report = projections.reconcile(**scope)
    assert counts(report) == {"row_differs": 1}
    assert report.checks["row_differs"].examples[0].detail == "missing from the live table"
    fixed_and_clean(projections, **scope)


def test_a_failed_live_projection_is_reported_and_replaced(projections: Projections) -> None:
    slot = next(s for s in projections.runner.slots if s.name == "engagement")
    original = slot.projector.handlers["CheckedIn"]
    slot.projector.handlers["CheckedIn"] = lambda event, position: 1 / 0
    with projections.store.write() as conn:  # make it replay, and fail, from the start
        positions = projections.table("engagement").metadata.tables["projection_positions"]
        conn.execute(delete(projections.table("engagement")))
        conn.execute(
            update(positions)
            .where(positions.c.name == "engagement")
            .values(position=0, generation=7)
        )
    projections.catch_up()
    slot.projector.handlers["CheckedIn"] = original
    # Reconciliation catches the live runner up, which retries a failed projector once its
    # backoff (2 s after a first failure) has passed, and would heal it on a slow machine before
    # --fix runs: keep it failed, so that the fix is what repairs it.
    slot.retry_at = float("inf")
    report = projections.reconcile()
    assert counts(report) == {"projection_health": 1}
    assert "ZeroDivisionError" in report.checks["projection_health"].examples[0].detail
    fixed_and_clean(projections)


def test_one_user_replays_only_that_users_streams(
    projections: Projections, monkeypatch: pytest.MonkeyPatch
) -> None:
    change(projections, "player_points", {"balance": 1}, telegram_id=BRUNO)
    read: list[Any] = []
    original = projections.events.streams

    def spy(streams: Any, upto: int) -> Any:
        read.extend(streams)
        return original(streams, upto)

    monkeypatch.setattr(projections.events, "streams", spy)
    assert projections.reconcile(user=ANA).consistent  # BRUNO's row is not ANA's business
    assert player_id(ANA) in read and player_id(BRUNO) not in read
    assert progress_id(ANA, SLUG) in read and progress_id(BRUNO, SLUG) not in read
    assert counts(projections.reconcile(user=BRUNO)) == {"row_differs": 1}


def test_events_arriving_during_a_run_raise_no_false_alarm(
    services: Services, projections: Projections
) -> None:
    app = services.app
    projections.live.poll_interval = 0.01
    projections.start()
    stop = threading.Event()
    written = 0

    def keep_writing() -> None:
        nonlocal written
        while not stop.is_set():
            written += 1
            ok(app.react(CARLA, f"chan:busy:{written}", "❤️", tg(CARLA)))

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        reports = [projections.reconcile(), projections.reconcile(user=CARLA)]
    finally:
        stop.set()
        writer.join()
        projections.stop()
    assert written > 0
    assert all(r.consistent for r in reports), [counts(r) for r in reports]


def test_a_fix_only_appends_events(
    services: Services, projections: Projections, clock: ManualClock
) -> None:
    change(projections, "player_points", {"balance": -1}, telegram_id=ANA)
    clock.advance(days=31)
    before = stored(services)
    projections.reconcile(fix=True)
    after = stored(services)
    assert after[: len(before)] == before and len(after) > len(before)
    assert projections.reconcile().consistent
    assert all_rows(projections)["player_points"][player_id(ANA)]["balance"] >= 0
