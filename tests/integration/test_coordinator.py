"""The coordinator on every store (memory, SQLite, PostgreSQL): each action kind's typed result,
a multi-aggregate command saved in one transaction, initialize, health, status, and the per-user
consistency check (issue 12, item 5)."""

from __future__ import annotations

import asyncio
from itertools import count

from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import RedeemVipToken, RegisterPlayer, StartStory
from dianabot.application.coordinator import (
    AccessVipStory,
    ActionResult,
    CompleteFragment,
    Coordinator,
    DailyCheckIn,
    Executable,
    Issue,
    PaidDecision,
    ParticipateInGroup,
    React,
    UnlockClue,
)
from dianabot.application.policies import POLICIES
from dianabot.application.results import Origin
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import player_id
from dianabot.projections.registry import ALL_NAMES
from sqlalchemy import update

from tests.conftest import ADMIN_ID, make_settings
from tests.unit.test_progress import small_story

ANA, BEA = 301, 302
SLUG = "prueba"
_updates = count(1)


def tg(user: int) -> Origin:
    return Origin.telegram(next(_updates), user)


def coordinator(services: Services) -> Coordinator:
    assert services.coordinator is not None
    return services.coordinator


def run(services: Services, action: Executable) -> ActionResult:
    """Through the awaited `execute` (the bot's way)."""
    return asyncio.run(coordinator(services).execute(action))


def setup(services: Services, *users: int) -> None:
    app = services.app
    app.ensure_badges(INITIAL_BADGES, Origin.system("test", "catalogue"))
    assert app.publish_story(small_story(), Origin.admin(ADMIN_ID)).ok
    for user in users:
        assert run(services, Issue(RegisterPlayer(user, f"user {user}"), tg(user))).ok
        assert run(services, Issue(StartStory(user, SLUG), tg(user))).ok  # on `a`, +5


def test_every_action_kind_returns_its_typed_result(services: Services) -> None:
    setup(services, ANA, BEA)
    reaction = run(services, React(telegram_id=ANA, origin=tg(ANA), post="chan:1", emoji="❤️"))
    assert reaction.ok and reaction.kind == "reaction" and reaction.failure is None
    assert "ReactionRecorded" in reaction.result.event_names()
    again = run(services, React(telegram_id=ANA, origin=tg(ANA), post="chan:1", emoji="🔥"))
    assert (again.outcome, again.failure, again.events) == ("already_reacted",) * 2 + ((),)

    message = run(services, ParticipateInGroup(telegram_id=ANA, origin=tg(ANA), message="g:1"))
    assert message.ok and message.kind == "group_participation"
    soon = run(services, ParticipateInGroup(telegram_id=ANA, origin=tg(ANA), message="g:2"))
    assert soon.outcome == "cooldown" and soon.retry_after is not None

    checkin = run(services, DailyCheckIn(telegram_id=ANA, origin=tg(ANA)))
    assert checkin.ok and checkin.kind == "daily_checkin"
    twice = run(services, DailyCheckIn(telegram_id=ANA, origin=tg(ANA)))
    assert twice.outcome == "already_checked_in"

    gate = run(
        services, AccessVipStory(telegram_id=ANA, origin=tg(ANA), choice_id="a_v", slug=SLUG)
    )
    assert gate.outcome == "vip_required" and gate.kind == "vip_story_access"
    assert gate.result.event_names() == ["VipGateHit"]  # recorded for the funnel

    wrong = run(
        services, CompleteFragment(telegram_id=ANA, origin=tg(ANA), choice_id="b_c", slug=SLUG)
    )
    assert wrong.outcome == "invalid_choice"
    done = run(
        services, CompleteFragment(telegram_id=ANA, origin=tg(ANA), choice_id="a_b", slug=SLUG)
    )
    assert done.ok and done.kind == "fragment_completion"
    assert (done.details["fragment_id"], done.details["reward"]) == ("b", 10)
    assert done.details["clue"] == "llave"
    clue = run(services, UnlockClue(telegram_id=ANA, origin=tg(ANA), choice_id="b_c", slug=SLUG))
    assert clue.ok and clue.kind == "clue_unlock" and clue.details["fragment_id"] == "c"

    broke = run(services, PaidDecision(telegram_id=BEA, origin=tg(BEA), choice_id="a_c", slug=SLUG))
    assert broke.outcome == "insufficient_points" and broke.kind == "paid_decision"
    assert broke.details == {"balance": 5, "cost": 20}
    back = run(
        services, CompleteFragment(telegram_id=ANA, origin=tg(ANA), choice_id="c_a", slug=SLUG)
    )
    assert back.ok
    paid = run(services, PaidDecision(telegram_id=ANA, origin=tg(ANA), choice_id="a_c", slug=SLUG))
    assert paid.ok and paid.details["paid"] == 20
    names = paid.result.event_names()
    assert "PointsSpent" in names and "ChoiceMade" in names  # the payment and the move together
    assert services.app.get_player(BEA).balance == 5  # type: ignore[union-attr]


def test_a_multi_aggregate_command_is_saved_in_one_transaction(services: Services) -> None:
    setup(services, ANA)
    app = services.app
    token = app.issue_vip_token(ADMIN_ID, 3, Origin.admin(ADMIN_ID)).details["token"]
    redeemed = run(services, Issue(RedeemVipToken(ANA, token), tg(ANA)))
    assert redeemed.ok and redeemed.kind == "command"
    events = redeemed.events
    assert [e.name for e in events] == ["VipTokenRedeemed", "VipGranted"]
    assert events[0].originator_id != events[1].originator_id  # two aggregates
    assert events[1].originator_id == player_id(ANA)
    positions = [e.position for e in events]
    assert positions[1] == positions[0] + 1  # one commit
    assert event_log(app).head() == positions[1]
    # VIP now: the gate opens.
    gate = run(
        services, AccessVipStory(telegram_id=ANA, origin=tg(ANA), choice_id="a_v", slug=SLUG)
    )
    assert gate.ok and gate.details["fragment_id"] == "c"
    # Used once: a second redemption records nothing.
    before = event_log(app).head()
    assert run(services, Issue(RedeemVipToken(ANA, token), tg(ANA))).outcome == "token_used"
    assert event_log(app).head() == before


def test_execute_sync_and_execute_many_on_the_store(services: Services) -> None:
    setup(services, ANA, BEA)
    subject = coordinator(services)
    assert subject.execute_sync(DailyCheckIn(telegram_id=ANA, origin=tg(ANA))).ok
    actions: list[Executable] = []
    for post in range(6):
        for user in (ANA, BEA):
            actions.append(React(telegram_id=user, origin=tg(user), post=f"p{post % 4}", emoji="❤️"))
    results = subject.execute_many_sync(actions)
    outcomes = [r.outcome for r in results]
    # Each user's p0..p3 are new, then p0 and p1 again: in the order given.
    assert outcomes == ["ok"] * 8 + ["already_reacted"] * 4
    assert [r.action for r in results] == actions
    assert services.app.get_player(ANA).balance == 5 + 10 + 40  # type: ignore[union-attr]


def test_initialize_starts_the_subscriptions_and_health_follows_them(
    services: Services, clock: ManualClock
) -> None:
    setup(services, ANA)
    subject = coordinator(services)
    reports = subject.initialize()
    assert {r.name for r in reports if r.group == "projection"} == set(ALL_NAMES)
    assert [r.name for r in reports if r.group == "policy"] == [p.name for p in POLICIES]
    assert all(r.running for r in reports)
    result = run(services, React(telegram_id=ANA, origin=tg(ANA), post="chan:9", emoji="❤️"))
    head = event_log(services.app).head()
    assert result.ok
    assert services.projections is not None and services.policies is not None
    assert services.projections.wait_for(head) and services.policies.wait_for(head)
    # The first besitos earned a badge through the running policy.
    assert services.app.get_award("primeros-besitos", ANA) is not None

    report = subject.health()
    assert report.status == "ok", report.reasons
    assert report.store.reachable and report.store.head == event_log(services.app).head()
    assert all(p.running for p in report.projections + report.policies)
    status = subject.status()
    assert status.counts == {"players": 1}
    assert status.head == report.store.head

    # A projection that failed makes the system failing, with the way out.
    assert services.projections is not None
    services.projections.stop()
    positions = services.projections.table("player_points").metadata.tables["projection_positions"]
    with services.projections.store.write() as conn:
        conn.execute(
            update(positions)
            .where(positions.c.name == "leaderboard")
            .values(state="failed", failed_position=3, last_error="boom")
        )
    failing = subject.health()
    assert failing.status == "failing"
    assert "`dianabot projections rebuild leaderboard`" in " ".join(failing.recommendations)


def test_check_consistency_replays_one_user(services: Services) -> None:
    setup(services, ANA, BEA)
    run(services, React(telegram_id=ANA, origin=tg(ANA), post="chan:1", emoji="❤️"))
    assert services.projections is not None
    services.projections.catch_up()
    outcome = coordinator(services).check_consistency(ANA)
    assert outcome.consistent and outcome.differences == 0 and outcome.telegram_id == ANA
    assert outcome.position == event_log(services.app).head()

    table = services.projections.table("player_points")
    with services.projections.store.write() as conn:
        conn.execute(update(table).where(table.c.player_id == player_id(ANA)).values(balance=999))
    broken = coordinator(services).check_consistency(ANA)
    assert not broken.consistent and broken.differences >= 1
    assert any("row_differs" in p for p in broken.problems)
    assert coordinator(services).check_consistency(BEA).consistent  # only ANA's rows


def test_execute_many_with_group_commit(database_url: str, clock: ManualClock) -> None:
    with bootstrap(make_settings(database_url, group_commit=True), clock=clock) as wired:
        users = range(400, 420)
        actions: list[Executable] = [Issue(RegisterPlayer(u, "x"), tg(u)) for u in users]
        actions += [
            React(telegram_id=u, origin=tg(u), post=f"p{n}", emoji="❤️")
            for n in range(3)
            for u in users
        ]
        assert wired.coordinator is not None
        results = wired.coordinator.execute_many_sync(actions)
        assert all(r.ok for r in results)
        for user in users:
            assert wired.app.get_player(user).balance == 30  # type: ignore[union-attr]
