"""The story-decisions policy: the first-decision badge and +5 besitos for the first decision
in each chapter, together, once per (user, story, chapter) forever (every store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.story_file import parse_story
from dianabot.application.clock import ManualClock
from dianabot.application.commands import MakeChoice, PublishStory, RewardDecision, StartStory
from dianabot.application.group_commit import DirectWriter
from dianabot.application.policies.story_decisions import StoryDecisions
from dianabot.application.ports import Write
from dianabot.application.results import Origin
from dianabot.domain import rules
from dianabot.domain.rules import PointSource

from tests.conftest import ADMIN_ID, by_system, make_settings
from tests.policies import do, event_ref, head, logged, register, renamed, runner, runner_of
from tests.samples import DECISIONS_STORY as STORY

ANA, BEA = 611, 612
SLUG = "decisiones"


WITHOUT_C = """
slug: decisiones
title: Decisiones
version_label: "2"
start: a
chapters:
  - {number: 1, title: Uno, arc: Libre, vip: false}
  - {number: 2, title: Dos, arc: Libre, vip: false}
fragments:
  - {id: a, chapter: 1, speaker: Diana, text: A., choices: [{id: a_b, label: B, next: b}]}
  - {id: b, chapter: 1, speaker: Diana, text: B., choices: [{id: b_d, label: D, next: d}]}
  - id: d
    chapter: 2
    speaker: Diana
    text: D.
    is_ending: true
    choices: [{id: d_a, label: Otra vez, next: a}]
"""


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock, projections=False) as wired:
        publish(wired, STORY)
        register(wired, ANA, BEA)
        for user in (ANA, BEA):
            assert do(wired, StartStory(user, SLUG)).ok
        yield wired


def publish(services: Services, text: str) -> None:
    command = PublishStory(parse_story(text, "decisiones.yaml"))
    assert do(services, command, Origin.admin(ADMIN_ID)).ok


def choose(services: Services, user: int, *choices: str) -> None:
    for choice in choices:
        assert do(services, MakeChoice(user, choice, SLUG)).ok, choice


def bonuses(services: Services, user: int) -> list[tuple[str, str]]:
    """(reference, causation) of the user's story_decision besitos."""
    player = services.app.get_player(user)
    assert player is not None
    return [
        (e.reference, e.causation)
        for e in logged(services, "PointsAwarded")
        if e.originator_id == player.id and e.source == PointSource.STORY_DECISION
    ]


def test_the_first_decision_in_each_chapter_earns_five_and_the_first_one_the_badge(
    services: Services,
) -> None:
    choose(services, ANA, "a_b", "b_c", "c_a", "a_b", "b_c", "c_d", "d_a")
    before = services.app.get_player(ANA)
    assert before is not None
    policies = runner(services, "story-decisions")
    policies.catch_up()

    decisions = logged(services, "ChoiceMade")
    chapter_1, chapter_2 = decisions[0], decisions[2]  # a_b on a; c_a on c
    assert bonuses(services, ANA) == [
        (rules.decision_reference(SLUG, 1), event_ref(chapter_1)),
        (rules.decision_reference(SLUG, 2), event_ref(chapter_2)),
    ]
    player = services.app.get_player(ANA)
    assert player is not None
    assert player.balance == before.balance + 2 * rules.STORY_DECISION_BONUS
    award = services.app.get_award("primera-decision", ANA)
    assert award is not None and award.held and award.evidence == [event_ref(chapter_1)]
    assert services.app.get_award("primera-decision", BEA) is None  # Bea decided nothing
    assert policies.status()[0].position == head(services)


def test_the_bonus_and_the_badge_of_one_decision_are_one_transaction(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    choose(services, ANA, "a_b")
    app = services.app
    writes: list[Write] = []
    record = app.record

    def spy(write: Write) -> Any:
        writes.append(write)
        return record(write)

    monkeypatch.setattr(app, "_record_guarded", spy)
    monkeypatch.setattr(app, "_tracked_writer", DirectWriter(spy, prepare=app._event_writer.encode))
    runner(services, "story-decisions").catch_up()

    first = logged(services, "ChoiceMade")[0]
    [write] = [w for w in writes if w.events]
    assert sorted(type(e).__name__ for e in write.events) == [
        "BadgeAwarded", "BadgeDefined", "PointsAwarded",
    ]  # fmt: skip
    assert {e.causation for e in write.events} == {event_ref(first)}
    assert write.tracking is not None and write.tracking.notification_id == first_position(
        services, first
    )
    assert app.subscriber_position("policy:story-decisions") == head(services)


def first_position(services: Services, event: Any) -> int:
    log = event_log(services.app)
    for page in log.pages(0, log.head(), 10_000):
        for row in page:
            if row.originator_id == event.originator_id and (
                row.originator_version == event.originator_version
            ):
                return row.id
    raise AssertionError("not in the log")


def test_the_bonus_is_once_per_chapter_forever_whatever_delivers_the_decision_again(
    services: Services, clock: ManualClock
) -> None:
    choose(services, ANA, "a_b", "b_c", "c_a")
    runner(services, "story-decisions").catch_up()
    assert len(bonuses(services, ANA)) == 2

    # Two days later (past the 24 h memory of command keys), every decision seen again under a
    # lost position, and the command issued afresh by some other cause: nothing more.
    clock.advance(timedelta(days=2))
    before = head(services)
    again = renamed(StoryDecisions, "story-decisions-again")
    runner_of(services, again(services.app)).catch_up()
    repeat = RewardDecision(ANA, SLUG, 1, ("primera-decision",), ("event:x:1",))
    result = do(services, repeat, by_system())
    assert result.ok and result.events == ()
    assert head(services) == before
    assert len(bonuses(services, ANA)) == 2

    # Later decisions in rewarded chapters issue no command at all.
    choose(services, ANA, "a_b", "b_c", "c_d")
    before = head(services)
    policies = runner(services, "story-decisions")
    policies.catch_up()
    assert head(services) == before and policies.slots[0].commands == 0
    assert len(bonuses(services, ANA)) == 2


def test_a_decision_on_a_fragment_a_later_version_removed_counts_in_its_old_chapter(
    services: Services,
) -> None:
    choose(services, ANA, "a_b", "b_c", "c_d")  # c_d is taken on c, chapter 2 in version 1
    publish(services, WITHOUT_C)  # version 2 has no c
    runner(services, "story-decisions").catch_up()
    assert [ref for ref, _ in bonuses(services, ANA)] == [
        rules.decision_reference(SLUG, 1),
        rules.decision_reference(SLUG, 2),
    ]
