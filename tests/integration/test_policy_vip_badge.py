"""The vip-badge policy: the VIP badge held exactly while VIP is active, awarded on a grant and
revoked on expiry, whatever order the policy sees the events in (every store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantVip, RevokeLapsedBadges
from dianabot.application.policies.vip_badge import VipBadge
from dianabot.application.results import Origin

from tests.conftest import ADMIN_ID, by_system, make_settings
from tests.policies import do, event_ref, head, logged, register, renamed, runner, runner_of

ANA = 641
BADGE = "el-divan"


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        register(wired, ANA)
        yield wired


def grant(services: Services, days: int) -> None:
    assert do(services, GrantVip(ANA, days, "admin", "regalo"), Origin.admin(ADMIN_ID)).ok


def expire(services: Services) -> None:
    assert services.app.expire_due_vips().expired == (ANA,)


def holds(services: Services) -> bool:
    award = services.app.get_award(BADGE, ANA)
    return award is not None and award.held


def award_events(services: Services) -> list[str]:
    return [
        type(e).__name__ for e in logged(services, "BadgeAwarded", "BadgeRevoked", "BadgeReawarded")
    ]


def test_awarded_on_grant_kept_through_an_extension_revoked_on_expiry_and_reawarded(
    services: Services, clock: ManualClock
) -> None:
    policies = runner(services, "vip-badge")
    grant(services, 30)
    policies.catch_up()
    [granted] = logged(services, "VipGranted")
    award = services.app.get_award(BADGE, ANA)
    assert award is not None and award.held and award.evidence == [event_ref(granted)]

    clock.advance(days=20)
    grant(services, 10)  # extends the active period: the badge is held already
    policies.catch_up()
    assert award_events(services) == ["BadgeAwarded"]
    assert policies.slots[0].commands == 1

    clock.advance(days=21)  # past the end (day 40)
    expire(services)
    policies.catch_up()
    assert not holds(services)
    assert award_events(services) == ["BadgeAwarded", "BadgeRevoked"]
    [expired] = logged(services, "VipExpired")
    [revoked] = logged(services, "BadgeRevoked")
    assert revoked.causation == event_ref(expired) and event_ref(expired) in revoked.reason

    grant(services, 5)
    policies.catch_up()
    assert holds(services)
    assert award_events(services) == ["BadgeAwarded", "BadgeRevoked", "BadgeReawarded"]

    # Everything seen again under a lost position: the present is unchanged.
    before = head(services)
    again = renamed(VipBadge, "vip-badge-again")
    runner_of(services, again(services.app)).catch_up()
    assert head(services) == before and holds(services)


def test_a_policy_that_lags_never_contradicts_the_present(
    services: Services, clock: ManualClock
) -> None:
    """Grant, expiry, a new grant: all before the policy runs. The old expiry revokes nothing
    (VIP is active again); the badge ends held, awarded once."""
    grant(services, 3)
    clock.advance(days=4)
    expire(services)
    grant(services, 30)
    runner(services, "vip-badge").catch_up()
    assert holds(services)
    assert award_events(services) == ["BadgeAwarded"]


def test_a_grant_whose_period_ended_before_the_policy_saw_it_awards_nothing(
    services: Services, clock: ManualClock
) -> None:
    grant(services, 1)
    clock.advance(days=2)
    expire(services)
    policies = runner(services, "vip-badge")
    policies.catch_up()
    assert award_events(services) == [] and policies.slots[0].commands == 0
    # Revoking what is not held: accepted, nothing recorded.
    result = do(services, RevokeLapsedBadges(ANA, (BADGE,), ("e:1",)), by_system())
    assert result.ok and result.events == ()


def test_a_held_badge_is_kept_while_vip_is_active(services: Services, clock: ManualClock) -> None:
    grant(services, 30)
    runner(services, "vip-badge").catch_up()
    before = head(services)
    result = do(services, RevokeLapsedBadges(ANA, (BADGE,), ("e:1",)), by_system())
    assert result.ok and result.events == () and head(services) == before
    assert holds(services)
    clock.advance(timedelta(days=31))  # ended, not yet expired by the job: still lapsed
    result = do(services, RevokeLapsedBadges(ANA, (BADGE,), ("e:2",)), by_system())
    assert result.event_names() == ["BadgeRevoked"]
