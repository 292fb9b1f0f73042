"""The coordinator's health rules, status and execute_many, on fakes of its ports (issue 12, 5).

Rules: failing if the store is unreachable or a projection failed; degraded if a policy is
retrying or has parked events, a lag is above the threshold, a projection is outdated, the last
reconciliation found differences, or Telegram runs unconnected; ok otherwise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from dianabot.application.clock import ManualClock
from dianabot.application.commands import Command, RegisterPlayer
from dianabot.application.coordinator import (
    ERROR,
    Coordinator,
    DailyCheckIn,
    Issue,
    React,
)
from dianabot.application.health import HealthRules, SubscriberState, TelegramStatus
from dianabot.application.ports import ConsistencyOutcome
from dianabot.application.results import CommandResult, Origin

HEAD = 500


@dataclass
class FakeGroup:
    kind: str
    states: list[SubscriberState]
    running: bool = False
    started: int = 0
    broken: Exception | None = None

    def start(self) -> None:
        self.started += 1
        self.running = True

    def standings(self) -> Sequence[SubscriberState]:
        if self.broken is not None:
            raise self.broken
        return self.states


@dataclass
class FakeStore:
    head_at: int = HEAD
    down: bool = False
    delay: float = 0.0
    calls: int = 0

    def head(self) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("connection refused")
        time.sleep(self.delay)
        return self.head_at


@dataclass
class FakeIncidents:
    parked: dict[str, int] = field(default_factory=dict)
    last: dict[str, Any] | None = None

    def parked_counts(self) -> dict[str, int]:
        return dict(self.parked)

    def last_reconciliation(self) -> dict[str, Any] | None:
        return self.last


@dataclass
class FakeTelegram:
    status: TelegramStatus

    def telegram_status(self) -> TelegramStatus:
        return self.status


class FakeCensus:
    def counts(self) -> Mapping[str, int]:
        return {"players": 7}


class FakeChecker:
    def check(self, telegram_id: int) -> ConsistencyOutcome:
        return ConsistencyOutcome(telegram_id, False, 2, HEAD, ("a", "b"))


def projection(name: str = "player_points", **changes: Any) -> SubscriberState:
    return SubscriberState(
        **{"name": name, "position": HEAD, "head": HEAD, "state": "ok", **changes}
    )


def policy(name: str = "badges-by-criteria", **changes: Any) -> SubscriberState:
    return projection(name, **changes)


CLEAN = {"at": "2026-01-01T09:00:00+00:00", "position": 480, "consistent": True, "differences": 0}


def coordinator(
    projections: list[SubscriberState] | None = None,
    policies: list[SubscriberState] | None = None,
    *,
    store: FakeStore | None = None,
    incidents: FakeIncidents | None = None,
    telegram: TelegramStatus | None = None,
    lag_threshold: int = 100,
    bus: Any = None,
) -> Coordinator:
    groups = [
        FakeGroup("projection", projections if projections is not None else [projection()]),
        FakeGroup("policy", policies if policies is not None else [policy()]),
    ]
    return Coordinator(
        bus or FakeBus(),
        store=store or FakeStore(),
        subscribers=groups,
        incidents=incidents if incidents is not None else FakeIncidents(last=dict(CLEAN)),
        consistency=FakeChecker(),
        telegram=None if telegram is None else FakeTelegram(telegram),
        census=FakeCensus(),
        clock=ManualClock(),
        rules=HealthRules(lag_threshold=lag_threshold),
    )


# ----- the overall status ---------------------------------------------------------------------


def test_everything_fine_is_ok_with_the_modules_reported() -> None:
    report = coordinator().health()
    assert report.status == "ok" and report.ok and not report.failing
    assert report.reasons == () and report.recommendations == ()
    assert report.store.reachable and report.store.head == HEAD
    assert report.store.latency_ms is not None and report.store.latency_ms >= 0
    assert [p.name for p in report.projections] == ["player_points"]
    assert [p.name for p in report.policies] == ["badges-by-criteria"]
    assert all(s.status == "ok" and s.lag == 0 for s in report.projections + report.policies)
    assert report.telegram.status == "not running"
    assert report.integrity.consistent and report.integrity.position == 480
    assert report.integrity.parked_events == 0
    as_dict = report.to_dict()
    assert as_dict["status"] == "ok" and set(as_dict["modules"]) == {
        "event_store",
        "projections",
        "policies",
        "telegram",
    }


def test_unreachable_store_is_failing_and_nothing_else_is_read() -> None:
    store = FakeStore(down=True)
    subject = coordinator(store=store)
    report = subject.health()
    assert report.status == "failing" and report.failing
    assert not report.store.reachable and "connection refused" in (report.store.error or "")
    assert report.projections == () and report.policies == ()
    assert any("event store unreachable" in r for r in report.reasons)
    assert any("DIANABOT_DATABASE_URL" in a for a in report.recommendations)
    assert all(group.started == 0 for group in subject.subscribers)  # type: ignore[attr-defined]


def test_a_failed_projection_is_failing_and_says_how_to_rebuild_it() -> None:
    failed = projection(
        "leaderboard", position=300, state="failed", last_error="KeyError: x", failed_at=301
    )
    report = coordinator([projection(), failed]).health()
    assert report.status == "failing"
    statuses = {p.name: p.status for p in report.projections}
    assert statuses == {"player_points": "ok", "leaderboard": "failing"}
    assert report.reasons == ("projection leaderboard failed at 301: KeyError: x",)
    assert report.recommendations == (
        "projection leaderboard failed at 301: fix the cause and restart the workers, "
        "or `dianabot projections rebuild leaderboard`",
    )


def test_an_outdated_projection_is_degraded_and_needs_a_rebuild() -> None:
    report = coordinator([projection("engagement", position=10, state="outdated")]).health()
    assert report.status == "degraded"
    assert report.recommendations == (
        "projection engagement is outdated: `dianabot projections rebuild engagement`",
    )


def test_a_retrying_policy_is_degraded() -> None:
    retrying = policy(state="retrying", position=499, failed_at=500, last_error="unavailable: down")
    report = coordinator(policies=[retrying]).health()
    assert report.status == "degraded"
    assert report.policies[0].status == "degraded"
    assert report.reasons == (
        "policy badges-by-criteria is retrying the event at 500: unavailable: down",
    )


def test_parked_events_come_from_the_incident_log_and_degrade() -> None:
    incidents = FakeIncidents(parked={"badges-by-criteria": 3}, last=dict(CLEAN))
    report = coordinator(incidents=incidents).health()
    assert report.status == "degraded"
    assert report.policies[0].parked == 3 and report.integrity.parked_events == 3
    assert (
        "policy badges-by-criteria has 3 parked events: fix the cause, then "
        "`dianabot policies retry --policy badges-by-criteria`"
    ) in report.recommendations


def test_without_an_incident_log_the_runner_parked_count_is_used() -> None:
    subject = coordinator(policies=[policy(parked=2)])
    subject.incidents = None
    report = subject.health()
    assert report.policies[0].parked == 2 and report.status == "degraded"
    assert not report.integrity.available
    assert not any("reconcil" in a for a in report.recommendations)


@pytest.mark.parametrize(
    ("lag", "status"), [(0, "ok"), (100, "ok"), (101, "degraded"), (HEAD, "degraded")]
)
def test_lag_above_the_threshold_is_degraded(lag: int, status: str) -> None:
    behind = projection(position=HEAD - lag)
    report = coordinator([behind], [policy(position=HEAD - lag)], lag_threshold=100).health()
    assert report.status == status
    if status == "degraded":
        assert f"projection player_points is {lag} events behind (threshold 100)" in report.reasons
        assert any("`dianabot workers`" in a for a in report.recommendations)


def test_no_reconciliation_yet_is_a_recommendation_not_a_degradation() -> None:
    report = coordinator(incidents=FakeIncidents()).health()
    assert report.status == "ok"
    assert report.recommendations == ("no reconciliation yet: run `dianabot reconcile`",)
    assert report.integrity.available and not report.integrity.ran


def test_differences_found_by_the_last_reconciliation_degrade() -> None:
    last = {**CLEAN, "consistent": False, "differences": 4, "checks": {"row_differs": 4}}
    report = coordinator(incidents=FakeIncidents(last=last)).health()
    assert report.status == "degraded"
    assert report.integrity.differences == 4 and report.integrity.checks == {"row_differs": 4}
    assert any("reconcile --fix" in a for a in report.recommendations)


def test_telegram_is_reported_when_running() -> None:
    absent = coordinator().health()
    assert absent.telegram.status == "not running" and absent.status == "ok"
    stopped = coordinator(telegram=TelegramStatus(running=False)).health()
    assert stopped.telegram.status == "not running" and stopped.status == "ok"
    connected = coordinator(telegram=TelegramStatus(running=True, connected=True)).health()
    assert connected.telegram.status == "ok" and connected.status == "ok"
    cut = coordinator(telegram=TelegramStatus(running=True, detail="getUpdates: timeout")).health()
    assert cut.telegram.status == "degraded" and cut.status == "degraded"
    assert "Telegram not connected: getUpdates: timeout" in cut.reasons


def test_failing_beats_degraded_and_every_reason_is_listed() -> None:
    report = coordinator(
        [projection(state="failed", failed_at=7, last_error="boom")],
        [policy(state="retrying", failed_at=9)],
    ).health()
    assert report.status == "failing" and len(report.reasons) == 2


def test_a_module_that_cannot_be_read_is_named() -> None:
    subject = coordinator()
    subject.subscribers[1].broken = RuntimeError("tracking table locked")  # type: ignore[attr-defined]
    report = subject.health()
    assert report.errors == {"policy": "RuntimeError: tracking table locked"}
    assert report.policies == () and len(report.projections) == 1


def test_the_store_latency_is_measured() -> None:
    report = coordinator(store=FakeStore(delay=0.02)).health()
    assert report.store.latency_ms is not None and report.store.latency_ms >= 20


def test_unreachable_report_without_a_coordinator() -> None:
    report = HealthRules().unreachable(ManualClock().now(), "could not connect")
    assert report.status == "failing" and report.store.error == "could not connect"


# ----- initialize, status, consistency --------------------------------------------------------


def test_initialize_starts_every_group_and_reports_positions() -> None:
    subject = coordinator([projection(position=480)], [policy(position=470)])
    reports = subject.initialize()
    assert all(group.started == 1 for group in subject.subscribers)  # type: ignore[attr-defined]
    assert [(r.group, r.name, r.position, r.lag, r.running) for r in reports] == [
        ("projection", "player_points", 480, 20, True),
        ("policy", "badges-by-criteria", 470, 30, True),
    ]


def test_status_is_compact() -> None:
    report = coordinator().status()
    assert report.head == HEAD and report.counts == {"players": 7}
    assert [s.name for s in report.subscriptions] == ["player_points", "badges-by-criteria"]
    down = coordinator(store=FakeStore(down=True)).status()
    assert down.head is None and down.subscriptions == () and "event_store" in down.errors


def test_check_consistency_goes_through_the_port() -> None:
    outcome = coordinator().check_consistency(42)
    assert outcome == ConsistencyOutcome(42, False, 2, HEAD, ("a", "b"))
    bare = coordinator()
    bare.consistency = None
    with pytest.raises(LookupError):
        bare.check_consistency(42)


# ----- execute_many ---------------------------------------------------------------------------


class FakeBus:
    """Records when each command runs; a user's `telegram_id` of 99 raises."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any, float]] = []
        self.running = 0
        self.most = 0

    def handle(self, command: Command, origin: Origin) -> CommandResult:
        return CommandResult("ok")

    async def handle_async(self, command: Command, origin: Origin) -> CommandResult:
        user = command.telegram_ids()[0]
        if user == 99:
            raise RuntimeError("a bug")
        self.running += 1
        self.most = max(self.most, self.running)
        self.log.append(("start", (user, getattr(command, "post", None)), time.monotonic()))
        await asyncio.sleep(0.01)
        self.log.append(("end", (user, getattr(command, "post", None)), time.monotonic()))
        self.running -= 1
        return CommandResult("ok", details={"post": getattr(command, "post", None)})


def react(user: int, post: str) -> React:
    return React(telegram_id=user, origin=Origin.telegram(1, user), post=post, emoji="❤️")


def test_execute_many_keeps_each_users_order_and_runs_users_side_by_side() -> None:
    bus = FakeBus()
    subject = coordinator(bus=bus)
    actions = [react(user, f"p{n}") for n in range(5) for user in (1, 2, 3, 4)]
    results = subject.execute_many_sync(actions)
    assert [r.details["post"] for r in results] == [a.post for a in actions]  # input order
    assert all(r.ok and r.kind == "reaction" for r in results)
    for user in (1, 2, 3, 4):  # one user's: one at a time, in the order given
        mine = [(kind, post) for kind, (who, post), _ in bus.log if who == user]
        assert mine == [(k, f"p{n}") for n in range(5) for k in ("start", "end")]
    assert bus.most == 4  # four users at once, not one by one


def test_execute_many_limits_commands_in_flight() -> None:
    bus = FakeBus()
    subject = coordinator(bus=bus)
    subject.concurrency = 2
    subject.execute_many_sync([react(user, "p") for user in range(1, 9)])
    assert bus.most == 2


def test_an_action_that_raises_is_an_error_result_and_the_rest_run() -> None:
    bus = FakeBus()
    actions: list[Any] = [
        react(1, "a"),
        DailyCheckIn(telegram_id=99, origin=Origin.telegram(2, 99)),
        react(1, "b"),
        Issue(RegisterPlayer(3, "Cleo"), Origin.telegram(3, 3)),
    ]
    results = coordinator(bus=bus).execute_many_sync(actions)
    assert [r.outcome for r in results] == ["ok", ERROR, "ok", "ok"]
    assert results[1].failure == ERROR and "a bug" in results[1].message
    assert results[3].kind == "command" and results[1].kind == "daily_checkin"
