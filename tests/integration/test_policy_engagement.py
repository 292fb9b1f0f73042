"""The engagement policy: the reactions badges, once the count of posts reacted to reaches
theirs (every store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import AnswerPoll, DefineBadge, ReactToPost
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
