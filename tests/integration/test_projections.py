"""Read models on every store: what each projection holds, batching, positions, failures, live mode.

The history comes from the real commands (points, badges, story, VIP), so these tests also pin the
event contract the projectors read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from datetime import timedelta
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.story_file import parse_story
from dianabot.application.clock import ManualClock
from dianabot.application.commands import AwardEarnedBadges
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import badge_award_id, badge_id, player_id, progress_id
from dianabot.projections.leaderboard import week_of
from dianabot.projections.positions import FAILED, OK
from dianabot.projections.registry import ALL_NAMES, PROJECTORS
from dianabot.projections.schema import TABLES, from_json_list
from dianabot.projections.service import Projections
from sqlalchemy import func, select, update

from tests.conftest import ADMIN_ID, by_system
from tests.samples import SMALL_STORY as STORY

ANA, BRUNO, CARLA = 101, 102, 103
SLUG = "prueba"
_updates = iter(range(1, 10**9))


def tg(user: int) -> Origin:
    return Origin.telegram(next(_updates), user)


def ok(result: Any) -> Any:
    assert result.ok, (result.outcome, result.message)
    return result


def head(app: DianaApplication) -> int:
    return app.recorder.max_notification_id() or 0


def play(app: DianaApplication, clock: ManualClock) -> None:
    """Three users touching every event the read models read."""
    slugs = [spec.slug for spec in INITIAL_BADGES]
    ok(app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))[0])
    for user, name in ((ANA, "Ana"), (BRUNO, "Bruno"), (CARLA, "Carla")):
        ok(app.register_player(user, name, tg(user)))
    for post in range(12):  # 120 besitos: level 2, the 10-reactions badge
        ok(app.react(ANA, f"chan:{post}", "❤️", tg(ANA)))
    ok(app.count_message(ANA, "group:1", tg(ANA)))
    ok(app.answer_poll(ANA, "poll:1", tg(ANA)))
    ok(app.check_in(ANA, tg(ANA)))
    clock.advance(hours=25)
    ok(app.check_in(ANA, tg(ANA)))
    ok(app.bus.handle(AwardEarnedBadges(ANA, tuple(slugs), ("test:evidence",)), by_system()))
    ok(app.publish_story(parse_story(STORY, "prueba.yaml"), Origin.admin(ADMIN_ID)))
    ok(app.start_story(ANA, tg(ANA), SLUG))
    ok(app.make_choice(ANA, "a_b", tg(ANA), SLUG))  # b: +10 and the clue
    ok(app.make_choice(ANA, "b_a", tg(ANA), SLUG))
    ok(app.make_choice(ANA, "a_c", tg(ANA), SLUG))  # pays 20; c is an ending: chapter 1 done
    ok(app.start_story(BRUNO, tg(BRUNO), SLUG))
    assert app.make_choice(BRUNO, "a_v", tg(BRUNO), SLUG).outcome == "vip_required"
    clock.advance(minutes=5)
    ok(app.grant_vip(BRUNO, 30, "stars", "charge:1", Origin.system("stars", "charge:1")))
    ok(app.grant_points(ADMIN_ID, BRUNO, 50, "welcome", Origin.admin(ADMIN_ID)))
    ok(app.deduct_points(ADMIN_ID, BRUNO, 30, "typo", Origin.admin(ADMIN_ID)))
    token = ok(app.issue_vip_token(ADMIN_ID, 3, Origin.admin(ADMIN_ID))).details["token"]
    ok(app.redeem_vip_token(CARLA, token, tg(CARLA)))
    clock.advance(days=4)
    assert app.expire_due_vips().expired == (CARLA,)


def rows(projections: Projections, base: str) -> dict[Hashable, dict[str, Any]]:
    key = TABLES[base].key
    with projections.store.read() as conn:
        found = conn.execute(select(projections.table(base))).mappings().all()
    return {
        (row[key[0]] if len(key) == 1 else tuple(row[k] for k in key)): dict(row) for row in found
    }


def all_rows(projections: Projections) -> dict[str, dict[Hashable, dict[str, Any]]]:
    return {base: rows(projections, base) for name in ALL_NAMES for base in PROJECTORS[name].tables}


@pytest.fixture
def projections(services: Services) -> Projections:
    assert services.projections is not None
    return services.projections


@pytest.fixture
def played(services: Services, clock: ManualClock) -> Services:
    play(services.app, clock)
    return services


# ----- what each read model holds ------------------------------------------------------------


def test_every_read_model_follows_the_history(played: Services, clock: ManualClock) -> None:
    app, projections = played.app, played.projections
    assert projections is not None
    assert projections.catch_up() == head(app)

    points = {row["telegram_id"]: row for row in rows(projections, "player_points").values()}
    for user in (ANA, BRUNO, CARLA):
        player = app.get_player(user)
        assert points[user]["balance"] == player.balance
        assert points[user]["lifetime"] == player.lifetime_earned
        assert points[user]["level"] == player.level
    assert points[ANA]["display_name"] == "Ana" and points[ANA]["level"] == 2
    assert (points[BRUNO]["balance"], points[BRUNO]["lifetime"]) == (25, 55)

    board = rows(projections, "leaderboard")
    assert board[("all", player_id(ANA))]["points"] == points[ANA]["lifetime"]
    assert board[("all", player_id(BRUNO))]["points"] == 55  # the deduction lowers no rank
    weeks = {period for period, _ in board if period != "all"}
    assert weeks and all(w.count("-W") == 1 for w in weeks)
    ana_weekly = sum(
        r["points"] for (p, who), r in board.items() if p != "all" and who == player_id(ANA)
    )
    assert ana_weekly == points[ANA]["lifetime"]

    engagement = rows(projections, "engagement")[player_id(ANA)]
    assert (engagement["reactions"], engagement["messages"], engagement["polls"]) == (12, 1, 1)
    assert (engagement["checkins"], engagement["streak"], engagement["best_streak"]) == (2, 2, 2)

    held = {
        (r["telegram_id"], r["badge_slug"])
        for r in rows(projections, "badges_held").values()
        if r["held"]
    }
    assert {(ANA, "primeros-besitos"), (ANA, "besitos-100"), (ANA, "reacciones-10")} <= held
    award = rows(projections, "badges_held")[badge_award_id("besitos-100", ANA)]
    assert from_json_list(award["evidence"]) == ["test:evidence"]
    definitions = rows(projections, "badge_definitions")
    assert len(definitions) == len(INITIAL_BADGES)
    assert definitions[badge_id("besitos-100")]["slug"] == "besitos-100"

    state = rows(projections, "story_state")[progress_id(ANA, SLUG)]
    assert (state["fragment_id"], state["chapter"], state["story_version"]) == ("c", 1, 1)
    assert from_json_list(state["clues"]) == ["llave"]
    assert from_json_list(state["chapters_completed"]) == [1]
    assert (state["choices_made"], state["last_choice"]) == (3, "a_c")
    version = rows(projections, "story_versions")[(SLUG, 1)]
    assert from_json_list(version["fragment_ids"]) == ["a", "b", "c", "d"]

    vip = rows(projections, "vip_members")
    assert vip[player_id(BRUNO)]["is_vip"] and vip[player_id(BRUNO)]["source"] == "stars"
    carla = vip[player_id(CARLA)]
    assert not carla["is_vip"] and carla["grants"] == 1 and carla["expired_at"] is not None

    funnel = rows(projections, "vip_funnel")
    assert set(funnel) == {player_id(BRUNO)}
    bruno = funnel[player_id(BRUNO)]
    assert bruno["gate_hits"] == 1 and bruno["last_gate_fragment"] == "a"
    assert bruno["conversion_source"] == "stars" and bruno["converted_at"] > bruno["first_gate_at"]

    assert projections.reconcile().consistent


def test_batches_of_any_size_give_the_same_rows(played: Services) -> None:
    reference = played.projections
    assert reference is not None
    reference.catch_up()
    expected = all_rows(reference)
    reference.rebuild()  # a fresh copy, then fold it again in tiny batches
    tiny = Projections(played.app, reference.store, reference.events, max_batch=3, page_size=2)
    with reference.store.write() as conn:  # forget everything: position 0, empty tables
        positions = tiny.table("player_points").metadata.tables["projection_positions"]
        for name in ALL_NAMES:
            for base in PROJECTORS[name].tables:
                conn.execute(tiny.table(base).delete())
            conn.execute(
                update(positions).where(positions.c.name == name).values(position=0, generation=99)
            )
    transactions = 0

    def count(_conn: Any, _batch: Any) -> None:
        nonlocal transactions
        transactions += 1

    tiny.runner.on_flush = count
    assert tiny.catch_up() == head(played.app)
    assert transactions >= head(played.app) // 3
    assert all_rows(tiny) == expected


def test_positions_and_lag_are_observable(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    before = {s.name: s for s in projections.status()}
    assert set(before) == set(ALL_NAMES)
    assert all(
        s.position == 0 and s.lag == head(played.app) and s.state == OK for s in before.values()
    )
    projections.runner.max_batch = 10
    projections.runner.step()
    partial = projections.status()
    assert all(s.position == 10 and s.lag == head(played.app) - 10 for s in partial)
    projections.catch_up()
    assert all(s.lag == 0 for s in projections.status())
    assert all(s.to_dict()["lag"] == 0 for s in projections.status())


def test_two_runners_on_one_store_never_apply_an_event_twice(played: Services) -> None:
    first = played.projections
    assert first is not None
    second = Projections(played.app, first.store, first.events, max_batch=4, page_size=2)
    first.runner.max_batch = 5
    busy = True
    while busy:  # interleaved batches: each one's flush finds the other's position
        busy = first.runner.step() is not None
        busy = second.runner.step() is not None or busy
    for runner in (first, second):
        runner.catch_up()
    assert first.reconcile().consistent
    assert (
        rows(first, "player_points")[player_id(ANA)]["balance"]
        == played.app.get_player(ANA).balance
    )


# ----- failures: stop at the event, report it, resume after a fix -------------------------


def test_a_failing_projector_stops_before_its_event_and_resumes_after_a_fix(
    played: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    projections = played.projections
    assert projections is not None
    slot = next(s for s in projections.runner.slots if s.name == "engagement")
    original = slot.projector.handlers["CheckedIn"]
    failing_at: list[int] = []

    def broken(event: Any, position: int) -> None:
        failing_at.append(position)
        raise ValueError("streak column overflow")

    slot.projector.handlers["CheckedIn"] = broken
    assert projections.catch_up() < head(played.app)
    status = {s.name: s for s in projections.status()}
    failed = status["engagement"]
    assert failed.state == FAILED and failed.failed_position == failing_at[0]
    assert failed.position == failing_at[0] - 1  # every event before it is applied and kept
    assert "CheckedIn" in failed.last_error and "streak column overflow" in failed.last_error
    assert failed.lag > 0
    others = [s for s in status.values() if s.name != "engagement"]
    assert all(s.state == OK and s.lag == 0 for s in others)  # isolated

    slot.projector.handlers["CheckedIn"] = original  # the fix
    projections.runner.retry_now()
    projections.catch_up()
    recovered = {s.name: s for s in projections.status()}["engagement"]
    assert recovered.state == OK and recovered.lag == 0 and recovered.last_error is None
    assert projections.reconcile().consistent


def test_a_failed_projector_resumes_in_a_new_process_after_a_fix(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    slot = next(s for s in projections.runner.slots if s.name == "vip_members")

    def broken(event: Any, position: int) -> None:
        raise RuntimeError("boom")

    slot.projector.handlers["VipGranted"] = broken
    projections.catch_up()
    assert {s.name: s.state for s in projections.status()}["vip_members"] == FAILED
    # the fixed code, a new runner
    restarted = Projections(played.app, projections.store, projections.events)
    restarted.catch_up()
    assert {s.name: s.state for s in restarted.status()}["vip_members"] == OK
    assert restarted.reconcile().consistent


# ----- rebuilds ----------------------------------------------------------------------------


def test_rebuild_swaps_in_identical_tables_and_keeps_the_schema(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    projections.catch_up()
    before = all_rows(projections)
    tables_before = projections.store.table_names()
    generations = {s.name: s.generation for s in projections.status()}
    result = projections.rebuild()
    assert set(result.names) == set(ALL_NAMES) and result.position == head(played.app)
    assert all_rows(projections) == before
    assert projections.store.table_names() == tables_before  # no shadow left behind
    assert all(s.generation == generations[s.name] + 1 for s in projections.status())
    ok(played.app.react(BRUNO, "chan:late", "🔥", tg(BRUNO)))  # the live runner carries on
    projections.catch_up()
    assert projections.reconcile().consistent


def test_rebuild_of_one_projection_leaves_the_others_alone(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    projections.catch_up()
    table = projections.table("leaderboard")
    with projections.store.write() as conn:
        conn.execute(table.delete())
    projections.rebuild(["leaderboard"])
    assert rows(projections, "leaderboard")
    generations = {s.name: s.generation for s in projections.status()}
    assert generations["leaderboard"] == 1 and generations["player_points"] == 0


def test_readers_never_see_an_empty_table_during_a_rebuild(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    projections.catch_up()
    expected = len(rows(projections, "player_points"))
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with projections.store.read() as conn:
                seen.append(
                    conn.execute(
                        select(func.count()).select_from(projections.table("player_points"))
                    ).scalar_one()
                )

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(3):
            projections.rebuild(["player_points"])
    finally:
        stop.set()
        reader.join()
    assert seen and set(seen) == {expected}


def test_a_live_runner_notices_a_swap_under_it(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    projections.catch_up()
    # e.g. the CLI, in another process
    other = Projections(played.app, projections.store, projections.events)
    other.rebuild(["player_points"])
    ok(played.app.react(ANA, "chan:after-swap", "✨", tg(ANA)))
    projections.catch_up()
    balance = rows(projections, "player_points")[player_id(ANA)]["balance"]
    assert balance == played.app.get_player(ANA).balance


# ----- live mode ---------------------------------------------------------------------------


def test_live_mode_follows_new_events(services: Services, clock: ManualClock) -> None:
    projections = services.projections
    assert projections is not None
    projections.live.poll_interval = 0.05
    projections.start()
    try:
        play(services.app, clock)
        assert projections.wait_for(head(services.app), timeout=20)
        ok(services.app.react(CARLA, "chan:live", "❤️", tg(CARLA)))
        started = time.monotonic()
        assert projections.wait_for(head(services.app), timeout=20)
        latency = time.monotonic() - started
    finally:
        projections.stop()
    assert latency < 5
    assert rows(projections, "engagement")[player_id(CARLA)]["reactions"] == 1
    assert projections.reconcile().consistent


@pytest.mark.postgres
def test_postgres_live_mode_is_woken_by_notify(postgres_url: str, clock: ManualClock) -> None:
    from dianabot.adapters.bootstrap import bootstrap

    from tests.conftest import make_settings

    with bootstrap(make_settings(postgres_url), clock=clock) as wired:
        projections = wired.projections
        assert projections is not None
        projections.live.poll_interval = 30.0  # polling alone would take half a minute
        projections.start()
        try:
            deadline = time.monotonic() + 10
            while not getattr(projections.live.waker, "healthy", False):
                assert time.monotonic() < deadline, "LISTEN never started"
                time.sleep(0.02)
            ok(wired.app.register_player(ANA, "Ana", tg(ANA)))
            started = time.monotonic()
            assert projections.wait_for(head(wired.app), timeout=10)
            assert time.monotonic() - started < 5
        finally:
            projections.stop()


def test_schema_creation_is_reproducible(services: Services) -> None:
    projections = services.projections
    assert projections is not None
    before = projections.store.table_names()
    # a second bootstrap: nothing to create
    Projections(services.app, projections.store, projections.events)
    assert projections.store.table_names() == before
    expected = {base for name in ALL_NAMES for base in PROJECTORS[name].tables}
    assert expected | {"projection_positions"} <= before


def test_week_of_uses_the_utc_iso_week() -> None:
    from datetime import UTC, datetime, timezone

    assert week_of(datetime(2026, 1, 1, 12, tzinfo=UTC)) == "2026-W01"
    assert week_of(datetime(2025, 12, 29, 0, 30, tzinfo=UTC)) == "2026-W01"
    minus_five = timezone(timedelta(hours=-5))
    assert week_of(datetime(2026, 1, 4, 22, 0, tzinfo=minus_five)) == "2026-W02"  # Mon 03:00 UTC


def test_the_screens_queries_read_the_read_models(played: Services, clock: ManualClock) -> None:
    from dianabot.projections import queries

    projections = played.projections
    assert projections is not None
    projections.catch_up()
    ana = queries.profile(projections, ANA)
    assert ana is not None and ana["display_name"] == "Ana" and ana["level"] == 2
    assert queries.profile(projections, 999) is None
    board = queries.top(projections, limit=2)
    assert [row["telegram_id"] for row in board] == [ANA, BRUNO]
    assert board[0]["rank"] == 1 and board[0]["points"] == ana["lifetime"]
    assert queries.top(projections, week=clock.now() + timedelta(weeks=5)) == []
    held = {row["badge_slug"] for row in queries.badges(projections, ANA)}
    assert {"primeros-besitos", "besitos-100", "reacciones-10"} <= held
    assert all(row["name"] for row in queries.badges(projections, ANA))
    position = queries.story_position(projections, ANA, SLUG)
    assert position is not None and position["fragment_id"] == "c"
    assert position["clues"] == ["llave"] and position["chapters_completed"] == [1]
    assert [row["telegram_id"] for row in queries.vip_members(projections, clock.now())] == [BRUNO]
    assert queries.funnel(projections) == {"users": 1, "converted": 1, "gate_hits": 1}


def test_projections_at_different_positions_each_resume_from_their_own(played: Services) -> None:
    """One projection rebuilt ahead of the others (or one recovering from a failure): a runner
    with small batches starts where the laggards are and never moves the leader backwards."""
    projections = played.projections
    assert projections is not None
    projections.runner.max_batch = 7
    projections.runner.step()  # every projection at 7
    # leaderboard at head
    Projections(played.app, projections.store, projections.events).rebuild(["leaderboard"])
    ok(played.app.react(CARLA, "chan:late", "❤️", tg(CARLA)))
    positions = {s.name: s.position for s in projections.status()}
    assert positions["leaderboard"] == head(played.app) - 2 and positions["engagement"] == 7
    while projections.runner.step() is not None:
        status = {s.name: s.position for s in projections.status()}
        assert status["leaderboard"] >= positions["leaderboard"]
    assert {s.position for s in projections.status()} == {head(played.app)}
    assert projections.reconcile().consistent
