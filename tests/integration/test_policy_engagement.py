"""The engagement policy: the reactions badges, once the count of posts reacted to reaches
theirs (every store)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import (
    AnswerPoll,
    ChangeBadge,
    DefineBadge,
    ReactToPost,
    RetireBadge,
)
from dianabot.application.policies.engagement import Engagement
from dianabot.application.results import Origin
from dianabot.domain.badge import BadgeSpec
from dianabot.domain.ids import player_id

from tests.conftest import ADMIN_ID, make_settings
from tests.policies import do, event_ref, head, logged, register, renamed, runner, runner_of

ANA, BEA = 621, 622


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        register(wired, ANA, BEA)
        yield wired


def react(services: Services, user: int, posts: range) -> None:
    for post in posts:
        assert do(services, ReactToPost(user, f"chan:{post}", "❤️")).ok


def test_the_tenth_reaction_earns_the_badge_with_itself_as_evidence(services: Services) -> None:
    react(services, ANA, range(9))
    react(services, BEA, range(9))
    assert do(services, ReactToPost(ANA, "chan:0", "🔥")).outcome == "already_reacted"
    assert do(services, AnswerPoll(ANA, "poll:1")).ok  # not a reaction
    policies = runner(services, "engagement")
    policies.catch_up()
    assert services.app.get_award("reacciones-10", ANA) is None

    react(services, ANA, range(9, 11))
    policies.catch_up()
    ana = player_id(ANA)
    tenth = [e for e in logged(services, "ReactionRecorded") if e.originator_id == ana][9]
    assert tenth.post == "chan:9"
    award = services.app.get_award("reacciones-10", ANA)
    assert award is not None and award.held and award.evidence == [event_ref(tenth)]
    assert services.app.get_award("reacciones-10", BEA) is None
    assert policies.slots[0].commands == 1  # one command: only the tenth reaction earned

    # The events again, under a lost position: nothing twice.
    before = head(services)
    again = renamed(Engagement, "engagement-again")
    runner_of(services, again(services.app)).catch_up()
    assert head(services) == before


def test_a_reactions_badge_an_admin_defines_later_counts_the_reactions_before_it(
    services: Services,
) -> None:
    react(services, ANA, range(4))
    policies = runner(services, "engagement")
    policies.catch_up()
    spec = BadgeSpec(
        "reacciones-5", "Cinco", "Cinco reacciones.", "5", {"kind": "reactions", "count": 5}
    )
    assert do(services, DefineBadge(spec), Origin.admin(ADMIN_ID)).ok
    react(services, ANA, range(4, 5))
    policies.catch_up()
    award = services.app.get_award("reacciones-5", ANA)
    assert award is not None and award.held


def test_a_badge_changed_or_retired_after_the_policy_loaded_it_counts_as_changed(
    services: Services,
) -> None:
    """The policy keeps each badge definition it loaded (`BadgeDirectory.definition`); a
    change or a retirement in the log replaces it from the next event on."""
    spec = BadgeSpec(
        "reacciones-3", "Tres", "Tres reacciones.", "3", {"kind": "reactions", "count": 3}
    )
    assert do(services, DefineBadge(spec), Origin.admin(ADMIN_ID)).ok
    react(services, ANA, range(1))
    policies = runner(services, "engagement")
    policies.catch_up()  # the directory has loaded the badge
    assert do(services, RetireBadge("reacciones-3", "fin"), Origin.admin(ADMIN_ID)).ok
    react(services, ANA, range(1, 3))
    policies.catch_up()
    assert services.app.get_award("reacciones-3", ANA) is None
    assert policies.slots[0].commands == 0  # retired: not even asked for

    harder = BadgeSpec(
        "reacciones-2", "Dos", "Dos reacciones.", "2", {"kind": "reactions", "count": 2}
    )
    assert do(services, DefineBadge(harder), Origin.admin(ADMIN_ID)).ok
    react(services, BEA, range(1))
    policies.catch_up()
    changed = replace(harder, criteria={"kind": "reactions", "count": 4})
    assert do(services, ChangeBadge(changed), Origin.admin(ADMIN_ID)).ok
    react(services, BEA, range(1, 3))
    policies.catch_up()
    assert services.app.get_award("reacciones-2", BEA) is None  # now four are needed
    react(services, BEA, range(3, 4))
    policies.catch_up()
    award = services.app.get_award("reacciones-2", BEA)
    assert award is not None and award.held
