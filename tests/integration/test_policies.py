"""The subscription runner and the badges-by-criteria policy (issue 12, items 1 and 2).

Every store: a policy's effect is recorded once, with its position, whatever restarts or
second runners do; a policy that raises is held back, then its event parked, while the other
policies go on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.commands import Command, GrantPoints, RegisterPlayer
from dianabot.application.policies import build
from dianabot.application.policies.base import Policy
from dianabot.application.results import Origin
from dianabot.domain.ids import parked_event_id
from dianabot.domain.incidents import PARKED
from dianabot.projections.subscriptions import PolicyRunner

from tests.conftest import ADMIN_ID, make_settings

ANA, BEA = 501, 502


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        yield wired


def grant(services: Services, user: int, amount: int, update: int) -> None:
    command = GrantPoints(user, admin_id=ADMIN_ID, amount=amount, reason="prueba")
    assert services.app.bus.handle(command, Origin.admin(ADMIN_ID)).ok


def register(services: Services, *users: int) -> None:
    for user in users:
        command = RegisterPlayer(user, f"user {user}")
        assert services.app.bus.handle(command, Origin.telegram(user, user)).ok


def runner(
    services: Services, policies: list[Policy] | None = None, **options: Any
) -> PolicyRunner:
    app = services.app
    return PolicyRunner(app, event_log(app), policies or build(app), **options)


def held(services: Services, user: int) -> dict[str, list[str]]:
    app = services.app
    slugs = ["primeros-besitos", "besitos-100", "besitos-500", "besitos-1000"]
    awards = {slug: app.get_award(slug, user) for slug in slugs}
    return {slug: list(a.evidence) for slug, a in awards.items() if a is not None and a.held}


def test_badges_by_criteria_awards_once_with_the_triggering_event_as_evidence(
    services: Services,
) -> None:
    register(services, ANA, BEA)
    grant(services, ANA, 150, 1)
    grant(services, BEA, 20, 2)
    first = runner(services)
    first.catch_up()

    ana = held(services, ANA)
    assert set(ana) == {"primeros-besitos", "besitos-100"}
    player = services.app.get_player(ANA)
    assert player is not None
    assert ana["besitos-100"] == [f"event:{player.id}:2"]  # the grant that crossed 100
    assert set(held(services, BEA)) == {"primeros-besitos"}
    head = event_log(services.app).head()
    assert first.status()[0].position == head and first.status()[0].lag == 0

    # A new runner (a restart) starts from the recorded position: nothing happens twice.
    again = runner(services)
    assert again.catch_up() == head
    assert event_log(services.app).head() == head

    grant(services, ANA, 400, 3)
    again.catch_up()
    assert set(held(services, ANA)) == {"primeros-besitos", "besitos-100", "besitos-500"}


def test_two_runners_at_once_record_each_effect_once(services: Services) -> None:
    register(services, ANA, BEA)
    for n in range(5):
        grant(services, ANA, 220, 10 + n)
        grant(services, BEA, 220, 20 + n)
    runners = [runner(services, page_size=3) for _ in range(2)]
    threads = [threading.Thread(target=r.catch_up) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runners[0].catch_up()
    awards = [
        n
        for n in event_log(services.app).pages(0, event_log(services.app).head(), 10_000)
        for n in n
        if n.topic.endswith("BadgeAwarded")
    ]
    # primeros-besitos, 100, 500 and 1000 for each user: once each.
    assert len(awards) == 8


class Exploding(Policy):
    """Raises on every grant of ANA's; does nothing otherwise."""

    name = "exploding"
    handles = frozenset({"PointsAdjusted"})

    def react(self, event: Any) -> Command | None:
        if self.owner(event) == ANA:
            raise RuntimeError("boom")
        return None


def test_a_failing_policy_is_held_back_then_parks_the_event_while_others_go_on(
    services: Services,
) -> None:
    register(services, ANA)
    grant(services, ANA, 150, 1)
    now = [0.0]
    app = services.app
    failing = Exploding(app)
    subject = runner(
        services, [failing, *build(app)], max_attempts=3, base_delay=1.0, clock=lambda: now[0]
    )
    subject.catch_up()

    by_name = {s.name: s for s in subject.status()}
    assert by_name["exploding"].state == "retrying" and by_name["exploding"].attempts == 1
    assert "boom" in (by_name["exploding"].last_error or "")
    failing_at = by_name["exploding"].failing_at
    assert failing_at is not None and by_name["exploding"].position == failing_at - 1
    assert by_name["badges-by-criteria"].lag == 0  # the others went on
    assert set(held(services, ANA)) == {"primeros-besitos", "besitos-100"}

    subject.catch_up()  # before its retry time: not retried
    assert {s.name: s for s in subject.status()}["exploding"].attempts == 1
    for _ in range(2):
        now[0] += 100
        subject.catch_up()

    after = {s.name: s for s in subject.status()}["exploding"]
    assert after.state == "ok" and after.lag == 0 and after.parked == 1
    parked = app._load(parked_event_id("exploding", failing_at))
    assert parked is not None and parked.state == PARKED and parked.attempts == 3
    assert "boom" in parked.error and parked.event_name == "PointsAdjusted"
    # Parked once: a new runner does not see the event again.
    assert runner(services, [Exploding(app)]).catch_up() == event_log(app).head()


def test_a_halted_step_ends_after_the_event_in_hand_and_records_how_far_it_got(
    services: Services,
) -> None:
    """A stop does not wait for a whole page: the step ends after the event in hand, its
    position is recorded, and the next step goes on from there (nothing skipped or doubled)."""
    register(services, ANA)
    for update in range(6):
        grant(services, ANA, 1, 10 + update)
    seen: list[int] = []
    halt = threading.Event()

    class Counting(Policy):
        name = "counting"
        handles = frozenset({"PointsAdjusted"})

        def react(self, event: Any) -> Command | None:
            seen.append(event.originator_version)
            if len(seen) == 2:
                halt.set()  # a stop asked while this event is in hand
            return None

    app = services.app
    policies = runner(services, [Counting(app)], page_size=500)
    policies.halt = halt
    assert policies.step() is not None
    assert seen == sorted(seen) and len(seen) == 2
    reached = app.subscriber_position("policy:counting")
    assert 0 < reached < event_log(app).head()
    halt.clear()
    policies.catch_up()
    assert len(seen) == 6 and len(set(seen)) == 6  # the rest, each once
    assert app.subscriber_position("policy:counting") == event_log(app).head()
