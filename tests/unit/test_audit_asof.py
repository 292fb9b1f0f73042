"""As-of replay against a fake of the `CommitTimes` port: "as of T" means the events
*committed* by T (a prefix of the log), not the events whose own timestamp is before T; and the
explanation's rules, causes and irregular amounts."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.rules import PointSource
from dianabot.projections.auditing.asof import (
    FutureMoment,
    balance_as_of,
    leaderboard_as_of,
    position_as_of,
)
from dianabot.projections.auditing.explain import criteria_rule, describe_cause, explain
from dianabot.projections.auditing.trail import UserTrail
from dianabot.projections.history import EventHistory

from tests.conftest import make_settings

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ANA, BRUNO = 7, 8


class FakeCommitTimes:
    """The chain's answer, faked: positions and the moment each was committed."""

    def __init__(self) -> None:
        self.moments: list[datetime] = []
        self.positions: list[int] = []

    def committed(self, position: int, at: datetime) -> None:
        assert not self.moments or at >= self.moments[-1]
        self.moments.append(at)
        self.positions.append(position)

    def last_position_committed_by(self, when: datetime) -> int:
        index = bisect.bisect_right(self.moments, when)
        return self.positions[index - 1] if index else 0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def app(clock: ManualClock) -> Iterator[DianaApplication]:
    with bootstrap(make_settings("memory://"), clock=clock, projections=False) as wired:
        yield wired.app


_updates = iter(range(1, 10**9))


def tg(user: int) -> Origin:
    return Origin.telegram(next(_updates), user)


def head(app: DianaApplication) -> int:
    return app.recorder.max_notification_id() or 0


def test_as_of_is_by_commit_time_not_by_the_events_own_time(
    app: DianaApplication, clock: ManualClock
) -> None:
    times = FakeCommitTimes()
    log = event_log(app)
    assert app.register_player(ANA, "Ana", tg(ANA)).ok
    assert app.react(ANA, "chan:1", "❤️", tg(ANA)).ok  # decided at T0
    times.committed(head(app), T0 + timedelta(seconds=1))
    first = head(app)
    # Decided at T0 too, but committed an hour later (a slow transaction, say).
    assert app.react(ANA, "chan:2", "❤️", tg(ANA)).ok
    times.committed(head(app), T0 + timedelta(hours=1))
    rows, _ = UserTrail(EventHistory(log, app.scan_notifications)).rows(ANA)
    now = T0 + timedelta(days=1)
    half_hour = T0 + timedelta(minutes=30)
    position = position_as_of(times, half_hour, now)
    assert position == first
    assert balance_as_of(log, rows, ANA, half_hour, position).balance == 10
    later = position_as_of(times, T0 + timedelta(hours=2), now)
    assert balance_as_of(log, rows, ANA, now, later).balance == 20
    # Both reactions have timestamps before the half hour: a replay by event time would say 20.
    assert all(log.decode(r).timestamp <= half_hour for r in rows)
    assert position_as_of(times, T0 - timedelta(days=1), now) == 0


def test_a_moment_after_now_is_refused(app: DianaApplication) -> None:
    with pytest.raises(FutureMoment, match="future"):
        position_as_of(FakeCommitTimes(), T0 + timedelta(days=2), T0 + timedelta(days=1))
    naive = datetime(2026, 3, 1, 8, 0)  # taken as UTC
    assert position_as_of(FakeCommitTimes(), naive, T0) == 0


def test_leaderboard_as_of_folds_only_the_prefix(app: DianaApplication, clock: ManualClock) -> None:
    times = FakeCommitTimes()
    log = event_log(app)
    for user, name in ((ANA, "Ana"), (BRUNO, "Bruno")):
        assert app.register_player(user, name, tg(user)).ok
    assert app.react(ANA, "chan:1", "❤️", tg(ANA)).ok
    times.committed(head(app), T0)
    for post in range(3):
        assert app.react(BRUNO, f"chan:{post}", "❤️", tg(BRUNO)).ok
    clock.advance(days=8)  # another ISO week
    assert app.grant_points(0, ANA, 100, "prize", Origin.console()).ok
    times.committed(head(app), clock.now())
    early = leaderboard_as_of(log, T0, position_as_of(times, T0, clock.now()))
    assert [
        (r["telegram_id"], r["points"], getattr(r["display_name"], "text", r["display_name"]))
        for r in early.rows
    ] == [(ANA, 10, "Ana")]
    late = leaderboard_as_of(log, clock.now(), position_as_of(times, clock.now(), clock.now()))
    assert [(r["telegram_id"], r["points"]) for r in late.rows] == [(ANA, 110), (BRUNO, 30)]
    week = leaderboard_as_of(log, clock.now(), head(app), week=True)
    assert [(r["telegram_id"], r["points"]) for r in week.rows] == [(ANA, 100)]
    assert leaderboard_as_of(log, clock.now(), head(app), limit=1).rows[0]["rank"] == 1


def test_an_award_that_breaks_its_rule_is_flagged(app: DianaApplication) -> None:
    assert app.register_player(ANA, "Ana", tg(ANA)).ok
    assert app.react(ANA, "chan:1", "❤️", tg(ANA)).ok
    origin = Origin.system("test", "odd")
    assert app.award_points(ANA, PointSource.REACTION, 999, "chan:2", origin).ok
    log = event_log(app)
    rows, _ = UserTrail(EventHistory(log, app.scan_notifications)).rows(ANA)
    found = explain(log, rows, ANA, head(app))
    assert [line.irregular for line in found.besitos] == [
        None, "reaction award of 999; the rule gives 10"
    ]  # fmt: skip
    assert not found.consistent and found.totals.balance == 1009
    assert found.levels[-1].level == 5 and found.levels[-1].irregular is None


def test_causes_and_criteria_in_words() -> None:
    cause = describe_cause("tg:5:update:42", "tg:user:7", {}, {})
    assert cause.text == "Telegram update 42 of bot 5, by tg:user:7"
    assert "console act" in describe_cause("cli:abcdef0123456789", "admin:0", {}, {}).text
    unresolved = describe_cause(f"event:{'0' * 8}-0000-0000-0000-{'0' * 12}:3", "policy:x", {}, {})
    assert unresolved.event_position is None and "policy:x reacting to" in unresolved.text
    assert describe_cause(None, None, {}, {}).text.startswith("no causation")
    assert criteria_rule({"kind": "lifetime_besitos", "threshold": 500}).endswith(">= 500")
    assert criteria_rule(None).startswith("criteria unknown")
