"""The auditor's reading tools on every store: a user's trail across their aggregates, state
as of a past position (the read models' own projectors replayed in memory), explanations whose
totals add up to the read model (or show the difference), and Open Badges credentials."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from dianabot.projections import queries
from dianabot.projections.auditing.asof import (
    EventTimeBound,
    balance_as_of,
    leaderboard_as_of,
)
from dianabot.projections.auditing.explain import ReadModelView, explain
from dianabot.projections.auditing.openbadges import credentials
from dianabot.projections.auditing.trail import UnknownUser, UserTrail
from dianabot.projections.history import EventHistory
from sqlalchemy import update

from tests.integration.test_projections import ANA, BRUNO, CARLA, play

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture
def played(services: Services, clock: ManualClock) -> Iterator[Services]:
    play(services.app, clock)
    assert services.projections is not None
    services.projections.catch_up()
    yield services


def _trail(wired: Services) -> UserTrail:
    return UserTrail(EventHistory(event_log(wired.app), wired.app.scan_notifications))


def _view(wired: Services, user: int) -> ReadModelView:
    projections = wired.projections
    assert projections is not None
    row = queries.profile(projections, user)
    assert row is not None
    held = tuple(sorted(b["badge_slug"] for b in queries.badges(projections, user)))
    return ReadModelView(row["balance"], row["lifetime"], row["level"], held)


def test_history_spans_every_aggregate_of_the_user_in_log_order(played: Services) -> None:
    trail = _trail(played)
    carla = list(trail.events(CARLA))
    kinds = {item.aggregate for item in carla}
    assert {"player", "vip-token"} <= kinds  # the token she redeemed is hers to audit
    positions = [item.entry.position for item in carla]
    assert positions == sorted(positions)
    assert {"VipTokenRedeemed", "VipGranted", "VipExpired"} <= {i.entry.type for i in carla}
    ana = list(trail.events(ANA))
    assert {"player", "badge-award", "story-progress"} <= {i.aggregate for i in ana}
    assert all(i.entry.causation and i.entry.actor for i in ana)
    only = list(trail.events(ANA, types=["pointsawarded"]))
    assert only and {i.entry.type for i in only} == {"PointsAwarded"}
    with pytest.raises(UnknownUser):
        trail.require_user(999)


def test_history_filters_by_the_events_own_time(played: Services) -> None:
    trail = _trail(played)
    everything = list(trail.events(ANA))
    times = sorted({i.entry.at for i in everything if i.entry.at is not None})
    assert len(times) > 1
    cut = times[0] + (times[-1] - times[0]) / 2
    early = list(trail.events(ANA, until=cut))
    late = list(trail.events(ANA, since=cut + timedelta(microseconds=1)))
    assert early and late and len(early) + len(late) == len(everything)
    assert all(i.entry.at is not None and i.entry.at <= cut for i in early)


def test_balance_as_of_replays_only_up_to_the_position(played: Services) -> None:
    log = event_log(played.app)
    rows, _ = _trail(played).rows(BRUNO)
    now = balance_as_of(log, rows, BRUNO, FAR_FUTURE, log.head())
    view = _view(played, BRUNO)
    assert (now.balance, now.lifetime, now.level) == (view.balance, view.lifetime, view.level)
    grant = next(r.id for r in rows if log.name_of(r.topic) == "PointsAdjusted")
    before = balance_as_of(log, rows, BRUNO, FAR_FUTURE, grant - 1)
    at_grant = balance_as_of(log, rows, BRUNO, FAR_FUTURE, grant)
    assert at_grant.balance == before.balance + 50
    assert at_grant.lifetime == before.lifetime + 50
    nothing = balance_as_of(log, rows, BRUNO, FAR_FUTURE, 0)
    assert not nothing.registered and nothing.balance == 0 and nothing.events == 0


def test_leaderboard_as_of_the_head_is_the_live_board(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    log = event_log(played.app)
    seen: list[tuple[int, int]] = []
    board = leaderboard_as_of(
        log, FAR_FUTURE, log.head(), progress=lambda at, target: seen.append((at, target))
    )
    live = queries.top(projections)
    assert [(r["telegram_id"], r["points"]) for r in board.rows] == [
        (r["telegram_id"], r["points"]) for r in live
    ]
    assert seen and seen[-1] == (log.head(), log.head())
    assert board.events == log.head() and board.players == 2  # Carla earned nothing


def test_leaderboard_as_of_an_earlier_position_leaves_later_events_out(played: Services) -> None:
    log = event_log(played.app)
    rows, _ = _trail(played).rows(BRUNO)
    grant = next(r.id for r in rows if log.name_of(r.topic) == "PointsAdjusted")
    before = leaderboard_as_of(log, FAR_FUTURE, grant - 1)
    after = leaderboard_as_of(log, FAR_FUTURE, grant)
    points = {r["telegram_id"]: r["points"] for r in before.rows}
    later = {r["telegram_id"]: r["points"] for r in after.rows}
    assert later[BRUNO] == points.get(BRUNO, 0) + 50
    assert leaderboard_as_of(log, FAR_FUTURE, 0).rows == []


def test_event_time_bound_stops_before_the_first_event_decided_later(
    played: Services, clock: ManualClock
) -> None:
    log = event_log(played.app)
    bound = EventTimeBound(log, page_size=7)
    assert bound.last_position_committed_by(FAR_FUTURE) == log.head()
    assert bound.last_position_committed_by(datetime(2000, 1, 1, tzinfo=UTC)) == 0
    rows, _ = _trail(played).rows(CARLA)
    expired = next(r for r in rows if log.name_of(r.topic) == "VipExpired")
    at = log.decode(expired).timestamp
    # The expiry is the last event, decided 4 days after everything else.
    assert bound.last_position_committed_by(at - timedelta(seconds=1)) == expired.id - 1


def test_explain_adds_up_to_the_read_model(played: Services) -> None:
    log = event_log(played.app)
    for user in (ANA, BRUNO, CARLA):
        rows, _ = _trail(played).rows(user)
        found = explain(log, rows, user, log.head(), _view(played, user))
        assert found.consistent, (found.differences, found.irregular)
        assert found.totals.balance == _view(played, user).balance
        for line in found.besitos:
            assert line.rule and line.cause.text and line.cause.causation
    rows, _ = _trail(played).rows(BRUNO)
    bruno = explain(log, rows, BRUNO, log.head(), _view(played, BRUNO))
    kinds = [line.kind for line in bruno.besitos]
    assert "grant" in kinds and "deduct" in kinds
    assert (bruno.totals.granted, bruno.totals.deducted) == (50, 30)
    assert any("admin" in line.reference for line in bruno.besitos)
    rows, _ = _trail(played).rows(ANA)
    ana = explain(log, rows, ANA, log.head(), _view(played, ANA))
    assert ana.levels and ana.levels[0].level == 2 and ana.levels[0].trigger is not None
    assert ana.levels[0].lifetime >= 100
    assert any(b.slug == "reacciones-10" for b in ana.badges)
    assert all(b.rule and not b.rule.startswith("criteria unknown") for b in ana.badges)


def test_explain_shows_a_read_model_that_differs(played: Services) -> None:
    projections = played.projections
    assert projections is not None
    table = projections.table("player_points")
    with projections.store.write() as conn:
        conn.execute(
            update(table).where(table.c.player_id == player_id(ANA)).values(balance=999_999)
        )
    log = event_log(played.app)
    rows, _ = _trail(played).rows(ANA)
    found = explain(log, rows, ANA, log.head(), _view(played, ANA))
    assert not found.consistent
    assert any(d.startswith("balance:") and "999999" in d for d in found.differences)


def test_open_badges_credentials_carry_their_evidence(played: Services) -> None:
    log = event_log(played.app)
    rows, _ = _trail(played).rows(ANA)
    found = explain(log, rows, ANA, log.head())
    issued = credentials(found, issuer="https://example.org/diana")
    held = set(found.totals.badges)
    assert {c["credentialSubject"]["achievement"]["tag"][0] for c in issued} == held
    for credential in issued:
        assert "OpenBadgeCredential" in credential["type"]
        assert credential["issuer"]["id"] == "https://example.org/diana"
        assert credential["credentialSubject"]["type"] == ["AchievementSubject"]
        assert credential["evidence"][0]["name"].startswith(("BadgeAwarded", "BadgeReawarded"))
        assert str(ANA) not in credential["credentialSubject"]["id"]  # a pseudonym


def test_as_of_uses_the_chains_commit_times(services: Services, clock: ManualClock) -> None:
    from dianabot.adapters.cli.audit_trail import COMMIT_TIME, commit_times

    app = services.app
    log = event_log(app)
    assert app.register_player(ANA, "Ana", Origin.telegram(1, ANA)).ok
    first = log.head()
    between = clock.advance(minutes=30)
    clock.advance(minutes=30)
    assert app.react(ANA, "chan:1", "❤️", Origin.telegram(2, ANA)).ok
    times, basis = commit_times(app, log)
    assert basis == COMMIT_TIME
    assert times.last_position_committed_by(between) == first
    assert times.last_position_committed_by(clock.now()) == log.head() > first
    assert times.last_position_committed_by(between - timedelta(days=1)) == 0


def test_explain_compares_a_lagging_read_model_at_its_own_position(played: Services) -> None:
    app, log = played.app, event_log(played.app)
    at = log.head()
    assert app.grant_points(0, ANA, 70, "late", Origin.console()).ok  # not projected yet
    view = _view(played, ANA)
    lagging = ReadModelView(view.balance, view.lifetime, view.level, view.badges, at)
    rows, _ = _trail(played).rows(ANA)
    found = explain(log, rows, ANA, log.head(), lagging)
    assert found.consistent and found.compared_at == at
    assert found.totals.balance == view.balance + 70  # explained up to the head
    assert found.besitos[-1].kind == "grant" and found.besitos[-1].cause.actor == "admin:0"
