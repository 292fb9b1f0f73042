"""The streak-badges policy: on a check-in, the checkin_streak badges its streak reached (every
store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import CheckIn, DefineBadge
from dianabot.application.policies.streaks import StreakBadges
from dianabot.application.results import Origin
from dianabot.domain.badge import BadgeSpec

from tests.conftest import ADMIN_ID, make_settings
from tests.policies import do, event_ref, head, logged, register, renamed, runner, runner_of

ANA = 601
DAY = timedelta(hours=24, minutes=1)


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        yield wired


def check_in_days(services: Services, clock: ManualClock, days: int, gap: timedelta = DAY) -> None:
    for _ in range(days):
        assert do(services, CheckIn(ANA)).ok
        clock.advance(gap)


def held(services: Services, *slugs: str) -> dict[str, list[str]]:
    awards = {slug: services.app.get_award(slug, ANA) for slug in slugs}
    return {slug: list(a.evidence) for slug, a in awards.items() if a is not None and a.held}


def test_the_badge_a_streak_reaches_is_awarded_with_that_check_in_as_evidence(
    services: Services, clock: ManualClock
) -> None:
    register(services, ANA)
    check_in_days(services, clock, 2)
    policies = runner(services, "streak-badges")
    policies.catch_up()
    assert held(services, "racha-3", "racha-7", "racha-30") == {}

    check_in_days(services, clock, 5)  # streak 7
    policies.catch_up()
    check_ins = logged(services, "CheckedIn")
    assert [e.streak for e in check_ins] == [1, 2, 3, 4, 5, 6, 7]
    assert held(services, "racha-3", "racha-7", "racha-30") == {
        "racha-3": [event_ref(check_ins[2])],
        "racha-7": [event_ref(check_ins[6])],
    }
    assert policies.status()[0].position == head(services)

    # Restarted, or the events seen again under a lost position: nothing is awarded twice.
    runner(services, "streak-badges").catch_up()
    again = renamed(StreakBadges, "streak-badges-again")
    before = head(services)
    runner_of(services, again(services.app)).catch_up()
    assert head(services) == before  # no event: its position is a tracking record
    assert len(logged(services, "BadgeAwarded", "BadgeReawarded")) == 2


def test_a_streak_badge_an_admin_defines_later_is_awarded_on_the_next_check_in(
    services: Services, clock: ManualClock
) -> None:
    register(services, ANA)
    check_in_days(services, clock, 6)
    policies = runner(services, "streak-badges")
    policies.catch_up()
    criteria = {"kind": "checkin_streak", "days": 5}
    spec = BadgeSpec("racha-5", "Racha de 5", "Cinco días.", "5", criteria)
    assert do(services, DefineBadge(spec), Origin.admin(ADMIN_ID)).ok
    check_in_days(services, clock, 1)  # streak 7: reaches 5 (and 3, 7, already held or not)
    policies.catch_up()
    check_ins = logged(services, "CheckedIn")
    assert held(services, "racha-5") == {"racha-5": [event_ref(check_ins[-1])]}
    assert set(held(services, "racha-3", "racha-7")) == {"racha-3", "racha-7"}


def test_a_policy_that_lags_awards_the_streak_reached_even_if_it_broke_since(
    services: Services, clock: ManualClock
) -> None:
    """Three days in a row, then a gap of three days: the fourth check-in starts again at 1.
    The policy, run only now, still awards racha-3 for the third check-in."""
    register(services, ANA)
    check_in_days(services, clock, 3)
    clock.advance(timedelta(days=3))
    check_in_days(services, clock, 1)
    player = services.app.get_player(ANA)
    assert player is not None and player.streak == 1
    runner(services, "streak-badges").catch_up()
    check_ins = logged(services, "CheckedIn")
    assert held(services, "racha-3", "racha-7") == {"racha-3": [event_ref(check_ins[2])]}
