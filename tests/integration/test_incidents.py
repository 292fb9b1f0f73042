"""What happens to trouble, durably (issue 12, items 1 and 2): parked events tried again, failed
commands recorded, the error-recovery policy's consistency checks, reconciliation summaries,
and the incidents read model (`IncidentLog`) that shows them.

Every store: a policy that raises parks its event, which the read model counts; a retry after
the cause is fixed applies the effect exactly once, together with the resolution; a corrupt
player stream makes a command fail `corrupt_history`, which the bus records (`CommandFailed`),
which the error-recovery policy answers with one consistency check of that user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    Command,
    GrantPoints,
    ParkEvent,
    RedeemVipToken,
    RegisterPlayer,
    RetryParkedEvent,
    SpendPoints,
)
from dianabot.application.policies import build
from dianabot.application.policies.badges_by_criteria import BadgesByCriteria
from dianabot.application.policies.base import Policy
from dianabot.application.policies.error_recovery import ErrorRecovery
from dianabot.application.ports import IncidentLog
from dianabot.application.results import CORRUPT_HISTORY, Origin
from dianabot.domain.ids import journal_id, parked_event_id, player_id
from dianabot.domain.incidents import PARKED, RESOLVED
from dianabot.projections.consistency import ReplayConsistency
from dianabot.projections.incident_log import Incidents
from dianabot.projections.parked import (
    ALREADY_RESOLVED,
    FAILED,
    retry_parked,
)
from dianabot.projections.parked import (
    RESOLVED as RETRY_RESOLVED,
)
from dianabot.projections.subscriptions import Policies

from tests.conftest import ADMIN_ID, make_settings
from tests.integration.test_corrupt_history import BROKEN, HEALTHY, corrupt, played

ANA = 501
BADGES = ["primeros-besitos", "besitos-100", "besitos-500", "besitos-1000"]


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock) as wired:
        yield wired


def grant(services: Services, user: int, amount: int) -> Any:
    command = GrantPoints(user, admin_id=ADMIN_ID, amount=amount, reason="prueba")
    return services.app.bus.handle(command, Origin.admin(ADMIN_ID))


def register(services: Services, user: int) -> None:
    result = services.app.bus.handle(RegisterPlayer(user, f"u{user}"), Origin.telegram(user, user))
    assert result.ok, result


def names_in_log(services: Services, name: str) -> list[Any]:
    log = event_log(services.app)
    return [
        row
        for page in log.pages(0, log.head(), 10_000)
        for row in page
        if log.name_of(row.topic) == name
    ]


def held(services: Services, user: int) -> set[str]:
    awards = {slug: services.app.get_award(slug, user) for slug in BADGES}
    return {slug for slug, award in awards.items() if award is not None and award.held}


class FlakyBadges(BadgesByCriteria):
    """The badges policy under another name, raising while `broken` (a bug, fixed later)."""

    name = "flaky-badges"
    broken = True

    def react(self, event: Any) -> Command | None:
        if self.broken:
            raise RuntimeError("flaky: the badge directory is unreachable")
        return super().react(event)


class Stingy(Policy):
    """Raises while `broken`; then asks for more besitos than anyone has (a rule refusal)."""

    name = "stingy"
    handles = frozenset({"PointsAdjusted"})
    broken = True

    def react(self, event: Any) -> Command | None:
        if self.broken:
            raise RuntimeError("stingy is broken")
        owner = self.owner(event)
        return None if owner is None else SpendPoints(owner, 1000, "gift", "too much")


def parking(services: Services, *policies: Policy) -> Policies:
    """A runner that gives up after two attempts, at once."""
    return Policies(
        services.app, event_log(services.app), list(policies), max_attempts=2, base_delay=0.0
    )


def incidents(services: Services) -> Incidents:
    """The incidents read model, caught up."""
    assert services.projections is not None
    services.projections.catch_up()
    log: IncidentLog = services.projections.incidents()  # what health reads
    assert isinstance(log, Incidents)
    return log


def test_a_parked_event_shows_then_a_retry_applies_its_effect_once(services: Services) -> None:
    app = services.app
    register(services, ANA)
    assert grant(services, ANA, 150).ok
    flaky = FlakyBadges(app)
    runner = parking(services, flaky)
    runner.catch_up()

    (grant_row,) = names_in_log(services, "PointsAdjusted")
    parked = app._load(parked_event_id(flaky.name, grant_row.id))
    assert parked is not None and parked.state == PARKED and parked.attempts == 2
    assert parked.stream_id == str(player_id(ANA)) and parked.stream_version == 2
    assert parked.evidence == f"event:{player_id(ANA)}:2"
    assert held(services, ANA) == set()
    log = incidents(services)
    assert log.parked_counts() == {"flaky-badges": 1}
    (row,) = log.parked()
    assert (row["policy"], row["position"], row["event_name"]) == (
        "flaky-badges",
        grant_row.id,
        "PointsAdjusted",
    )
    assert row["state"] == PARKED and row["attempts"] == 2 and "unreachable" in row["error"]

    # Still broken: the retry fails again, is recorded, and the event stays parked.
    by_name = {flaky.name: flaky}
    assert services.projections is not None
    events = services.projections.events
    (again,) = retry_parked(app.bus, events, by_name, log.parked(), Origin.console())
    assert again.outcome == FAILED and "unreachable" in again.detail
    (row,) = incidents(services).parked()
    assert row["attempts"] == 3 and row["state"] == PARKED

    # Fixed: the effect and the resolution are recorded together, once.
    flaky.broken = False
    before = len(names_in_log(services, "BadgeAwarded"))
    (done,) = retry_parked(app.bus, events, by_name, incidents(services).parked(), Origin.console())
    assert done.outcome == RETRY_RESOLVED and done.reaction == "AwardEarnedBadges", done
    assert held(services, ANA) == {"primeros-besitos", "besitos-100"}
    awards = names_in_log(services, "BadgeAwarded")
    assert len(awards) == before + 2
    (resolution,) = names_in_log(services, "ParkedEventResolved")
    assert all(a.id < resolution.id for a in awards)
    award = app.get_award("besitos-100", ANA)
    assert award is not None and list(award.evidence) == [parked.evidence]
    resolved = app._load(parked_event_id(flaky.name, grant_row.id))
    assert resolved.state == RESOLVED and resolved.outcome == "applied: AwardEarnedBadges"
    log = incidents(services)
    assert log.parked_counts() == {} and log.parked() == []
    (row,) = log.parked(unresolved=False)
    assert row["state"] == RESOLVED and row["outcome"] == "applied: AwardEarnedBadges"
    assert row["resolved_at"] is not None

    # A second retry does nothing: nothing is parked, and the old row is refused as resolved.
    head = events.head()
    assert retry_parked(app.bus, events, by_name, log.parked(), Origin.console()) == []
    (late,) = retry_parked(app.bus, events, by_name, [row], Origin.console())
    assert late.outcome == ALREADY_RESOLVED
    assert events.head() == head and held(services, ANA) == {"primeros-besitos", "besitos-100"}


def test_a_reaction_the_rules_refuse_resolves_the_parked_event(services: Services) -> None:
    app = services.app
    register(services, ANA)
    assert grant(services, ANA, 10).ok
    stingy = Stingy(app)
    parking(services, stingy).catch_up()
    assert incidents(services).parked_counts() == {"stingy": 1}
    balance = app.get_player(ANA).balance  # type: ignore[union-attr]

    stingy.broken = False
    assert services.projections is not None
    (done,) = retry_parked(
        app.bus,
        services.projections.events,
        {"stingy": stingy},
        incidents(services).parked(),
        Origin.console(),
    )
    assert done.outcome == RETRY_RESOLVED
    assert done.detail.startswith("refused: insufficient_points")
    assert app.get_player(ANA).balance == balance  # type: ignore[union-attr]
    assert incidents(services).parked_counts() == {}


def test_a_retry_only_runs_what_a_policy_may_issue(services: Services) -> None:
    app = services.app
    register(services, ANA)
    assert grant(services, ANA, 10).ok
    stingy = Stingy(app)
    parking(services, stingy).catch_up()
    (row,) = incidents(services).parked()
    head = event_log(app).head()
    # RedeemVipToken is the player's alone: no retry may smuggle it in, not even the console's.
    smuggled = RetryParkedEvent("stingy", row["position"], RedeemVipToken(ANA, "vip-nope"))
    result = app.bus.handle(smuggled, Origin.console())
    assert result.outcome == "not_admin" and event_log(app).head() == head


def test_a_parked_event_triggers_a_consistency_check_of_its_user(services: Services) -> None:
    app = services.app
    assert services.projections is not None
    register(services, ANA)
    assert grant(services, ANA, 150).ok
    recovery = ErrorRecovery(app, ReplayConsistency(services.projections))
    runner = parking(services, FlakyBadges(app), recovery)
    runner.catch_up()
    runner.catch_up()  # the parking is an event too: error recovery reacts to it

    (check,) = incidents(services).consistency_checks()
    assert check["telegram_id"] == ANA and check["consistent"] and check["differences"] == 0
    (parked_row,) = names_in_log(services, "EventParked")
    assert check["causation"] == f"event:{parked_row.originator_id}:1"
    assert check["actor"] == "policy:error-recovery"
    # Parked once, checked once: a restarted runner has nothing more to do.
    head = event_log(app).head()
    parking(services, FlakyBadges(app), ErrorRecovery(app, _checker(services))).catch_up()
    assert event_log(app).head() == head


def test_a_corrupt_stream_fails_a_command_which_is_recorded_and_checked_once(
    services: Services,
) -> None:
    app = services.app
    assert services.projections is not None and services.policies is not None
    played(services)
    services.projections.catch_up()
    policies = services.policies
    assert "error-recovery" in policies.names
    policies.catch_up()
    broken_at = next(
        row.id
        for row in names_in_log(services, "PointsAdjusted")
        if row.originator_id == player_id(BROKEN) and row.originator_version == 2
    )
    corrupt(services, 2, delete=False)

    failed = grant(services, BROKEN, 5)
    assert failed.outcome == CORRUPT_HISTORY
    assert grant(services, HEALTHY, 5).ok
    (failure,) = incidents(services).command_failures()
    assert failure["command"] == "GrantPoints" and failure["telegram_id"] == BROKEN
    assert failure["outcome"] == CORRUPT_HISTORY and failure["version"] == 2
    assert failure["stream"] == str(player_id(BROKEN))
    assert failure["requested_by"] == f"admin:{ADMIN_ID}"
    assert failure["causation"].startswith("cli:")

    policies.catch_up()
    (check,) = incidents(services).consistency_checks(telegram_id=BROKEN)
    assert not check["consistent"] and check["differences"] > 0
    assert any(f"position:{broken_at}" in problem for problem in check["problems"]), check
    assert check["actor"] == "policy:error-recovery"
    (failed_row,) = names_in_log(services, "CommandFailed")
    assert check["causation"] == f"event:{journal_id()}:{failed_row.originator_version}"

    # Exactly once: a restarted runner (every policy) sees nothing new to do.
    head = event_log(app).head()
    restarted = Policies(app, event_log(app), build(app, consistency=_checker(services)))
    restarted.catch_up()
    assert event_log(app).head() == head
    assert len(incidents(services).consistency_checks()) == 1


def test_the_owner_of_a_corrupt_parked_stream_is_read_from_its_events(
    services: Services,
) -> None:
    app = services.app
    assert services.projections is not None
    played(services)
    corrupt(services, 2, delete=False)
    third = next(
        row
        for row in names_in_log(services, "PointsAdjusted")
        if row.originator_id == player_id(BROKEN) and row.originator_version == 3
    )
    park = ParkEvent("some-policy", third.id, str(player_id(BROKEN)), 3, "PointsAdjusted", "x", 5)
    assert app.bus.handle(park, Origin.system("policies", "park")).ok
    recovery = ErrorRecovery(app, ReplayConsistency(services.projections))
    assert recovery.stream_owner(player_id(BROKEN)) == BROKEN  # loading it fails: corrupt
    Policies(app, event_log(app), [recovery]).catch_up()
    (check,) = incidents(services).consistency_checks()
    assert check["telegram_id"] == BROKEN and not check["consistent"]


def test_a_failure_reported_twice_for_one_cause_is_recorded_once(services: Services) -> None:
    played(services)
    corrupt(services, 2, delete=False)
    origin = Origin.admin(ADMIN_ID)
    command = GrantPoints(BROKEN, admin_id=ADMIN_ID, amount=5, reason="again")
    for _ in range(3):  # as a policy retries one command for one event
        assert services.app.bus.handle(command, origin).outcome == CORRUPT_HISTORY
    assert len(names_in_log(services, "CommandFailed")) == 1


def test_an_awaited_command_that_fails_is_recorded_too(services: Services) -> None:
    played(services)
    corrupt(services, 2, delete=True)  # a gap in the versions
    command = GrantPoints(BROKEN, admin_id=ADMIN_ID, amount=5, reason="awaited")
    result = asyncio.run(services.app.bus.handle_async(command, Origin.admin(ADMIN_ID)))
    assert result.outcome == CORRUPT_HISTORY
    (failure,) = incidents(services).command_failures(telegram_id=BROKEN)
    assert (failure["command"], failure["version"]) == ("GrantPoints", 3)
    # Rule refusals are not failures: nothing more recorded.
    refused = GrantPoints(HEALTHY, admin_id=ADMIN_ID, amount=0, reason="zero")
    assert services.app.bus.handle(refused, Origin.admin(ADMIN_ID)).outcome != "ok"
    assert len(incidents(services).command_failures()) == 1


def test_a_full_reconciliation_records_its_summary(services: Services) -> None:
    assert services.projections is not None
    projections = services.projections
    register(services, ANA)
    assert grant(services, ANA, 150).ok
    assert incidents(services).last_reconciliation() is None

    assert projections.reconcile(user=ANA).consistent
    assert incidents(services).last_reconciliation() is None  # one user's: not a full run

    report = projections.reconcile()
    summary = projections.incidents().last_reconciliation()  # caught up by the run itself
    assert summary is not None
    assert summary["position"] == report.position and summary["consistent"]
    assert summary["differences"] == 0 and summary["fixes"] == 0
    assert summary["checks"] == {name: 0 for name in report.checks}
    assert summary["recorded_at"] > report.position

    # The incidents read model is compared like any other: still consistent, rebuilt alike.
    second = projections.reconcile()
    assert second.consistent, [(p.check, p.key, p.detail) for p in second.problems]
    assert projections.incidents().last_reconciliation()["position"] == second.position  # type: ignore[index]
    before = projections.incidents().parked(unresolved=False)
    projections.rebuild(["incidents"])
    assert projections.incidents().last_reconciliation()["position"] == second.position  # type: ignore[index]
    assert projections.incidents().parked(unresolved=False) == before


def _checker(services: Services) -> ReplayConsistency:
    assert services.projections is not None
    return ReplayConsistency(services.projections)
