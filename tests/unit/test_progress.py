"""StoryProgress and the Story aggregate: every narrative rule on the domain, no store involved.

`small_story()` (also used by the integration tests) is a tiny story with every feature: a start
reward, a paid choice, a vip_only choice, a clue granted then required, a loop back, an ending
with a choice into a VIP chapter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from dianabot.adapters.story_file import parse_story
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DuplicateCommand, InsufficientPoints
from dianabot.domain.player import Player
from dianabot.domain.progress import (
    ClueRequired,
    InvalidChoice,
    StoryProgress,
    VipRequired,
    begin,
    take_choice,
)
from dianabot.domain.rules import PointSource
from dianabot.domain.story import LoadedStory, Story
from dianabot.domain.story_validation import validate_story
from dianabot.domain.story_versions import InvalidStory, StoryNotPublished, StoryVersions

from tests.samples import SMALL_STORY
from tests.samples import SMALL_STORY_WITHOUT_B as WITHOUT_B

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
USER = 7
_updates = count(1)


def small_story(text: str = SMALL_STORY) -> LoadedStory:
    return parse_story(text, "prueba.yaml")


def cause(at: datetime = T0, causation: str | None = None) -> Cause:
    return Cause(causation or f"tg:update:{next(_updates)}", f"tg:user:{USER}", at)


def names(*aggregates: object) -> list[str]:
    return [type(e).__name__ for a in aggregates for e in a.collect_events()]  # type: ignore[attr-defined]


def player(balance: int = 0, vip_days: int = 0) -> Player:
    p = Player.register(USER, "Ana", cause())
    if balance:
        p.award(PointSource.REACTION, balance, "seed", cause())
    if vip_days:
        p.grant_vip(vip_days, "admin", "test", cause())
    p.collect_events()
    return p


def started(p: Player, story: Story | None = None) -> StoryProgress:
    progress = begin(p, story or small_story().story, 1, cause())
    progress.collect_events()
    p.collect_events()
    return progress


@pytest.fixture
def story() -> Story:
    return small_story().story


def test_small_story_is_publishable() -> None:
    assert validate_story(small_story()) == []
    assert validate_story(small_story(WITHOUT_B)) == []


def test_begin_enters_the_start_and_rewards_it(story: Story) -> None:
    p = player()
    progress = begin(p, story, 1, cause())
    assert names(progress) == ["StoryStarted", "FragmentEntered"]
    assert names(p) == ["PointsAwarded"]
    assert progress.fragment_id == "a" and progress.visited == {"a"}
    assert p.balance == 5


def test_choice_from_another_fragment_is_refused_and_records_nothing(story: Story) -> None:
    p = player(balance=100)
    progress = started(p, story)
    with pytest.raises(InvalidChoice) as refused:
        take_choice(progress, p, story, 1, "b_a", cause())
    assert refused.value.code == "invalid_choice"
    assert "belongs to fragment 'b'" in refused.value.message
    with pytest.raises(InvalidChoice):
        take_choice(progress, p, story, 1, "no_such_choice", cause())
    assert names(progress, p) == []
    assert progress.fragment_id == "a"


def test_free_player_hits_the_vip_gate_once_per_update(story: Story) -> None:
    p = player(balance=100)
    progress = started(p, story)
    update = cause()
    outcome = take_choice(progress, p, story, 1, "a_v", update)  # vip_only choice
    assert outcome.vip_gate and outcome.fragment_id == "a"
    assert names(progress, p) == ["VipGateHit"]
    again = take_choice(progress, p, story, 1, "a_v", update)  # the same update redelivered
    assert again.vip_gate and names(progress) == []
    assert progress.fragment_id == "a" and progress.vip_gate_hits == 1


def test_free_player_cannot_enter_a_vip_fragment(story: Story) -> None:
    p = player(balance=100)
    progress = started(p, story)
    take_choice(progress, p, story, 1, "a_c", cause())
    names(progress, p)
    outcome = take_choice(progress, p, story, 1, "c_d", cause())
    assert outcome.vip_gate and progress.fragment_id == "c"
    assert names(progress, p) == ["VipGateHit"]


def test_vip_player_passes_the_gate_and_completes_the_vip_chapter(story: Story) -> None:
    p = player(vip_days=30)
    progress = started(p, story)
    outcome = take_choice(progress, p, story, 1, "a_v", cause())
    assert not outcome.vip_gate and outcome.chapters_completed == (1,)
    names(progress, p)
    outcome = take_choice(progress, p, story, 1, "c_d", cause())
    assert outcome.fragment_id == "d" and outcome.chapters_completed == (2,)
    assert names(progress) == ["ChoiceMade", "FragmentEntered", "ChapterCompleted"]
    assert progress.chapters_completed == {1, 2}


def test_expired_vip_is_gated_again(story: Story) -> None:
    p = player(vip_days=1)
    progress = started(p, story)
    later = T0 + timedelta(days=2)
    outcome = take_choice(progress, p, story, 1, "a_v", cause(later))
    assert outcome.vip_gate


def test_clue_gated_choice_needs_the_clue(story: Story) -> None:
    p = player()
    progress = started(p, story)
    take_choice(progress, p, story, 1, "a_b", cause())
    assert progress.clues == {"llave"}
    take_choice(progress, p, story, 1, "b_c", cause())
    assert progress.fragment_id == "c"
    # Without the clue: a progress that reached b some other way cannot use b_c.
    fresh = started(player(), story)
    fresh._fragment_entered(  # put it on b without the reward (as a relocation would)
        fragment_id="b", chapter=1, via_choice=None, story_version=1, **cause().event_fields()
    )
    fresh.collect_events()
    with pytest.raises(ClueRequired) as refused:
        take_choice(fresh, player(), story, 1, "b_c", cause())
    assert refused.value.code == "clue_required" and refused.value.details["clue"] == "llave"
    assert names(fresh) == []


def test_paid_choice_pays_once_and_is_refused_when_short(story: Story) -> None:
    poor = player(balance=0)
    progress = started(poor, story)  # balance 5 after the start reward
    with pytest.raises(InsufficientPoints):
        take_choice(progress, poor, story, 1, "a_c", cause())
    assert names(progress, poor) == [] and poor.balance == 5 and progress.fragment_id == "a"

    p = player(balance=15)
    progress = started(p, story)  # 20 with the start reward
    outcome = take_choice(progress, p, story, 1, "a_c", cause())
    assert outcome.paid == 20 and p.balance == 0
    assert names(p) == ["PointsSpent"]
    assert names(progress) == ["ChoiceMade", "FragmentEntered", "ChapterCompleted"]
    # Loop back to a (no second start reward) and take the paid choice again: free this time.
    take_choice(progress, p, story, 1, "c_a", cause())
    assert names(p) == [] and p.balance == 0
    outcome = take_choice(progress, p, story, 1, "a_c", cause())
    assert outcome.paid == 0 and names(p) == [] and progress.fragment_id == "c"


def test_spend_and_move_carry_the_choice_reference(story: Story) -> None:
    p = player(balance=15)
    progress = started(p, story)
    take_choice(progress, p, story, 1, "a_c", cause())
    spent = [e for e in p.collect_events() if type(e).__name__ == "PointsSpent"][0]
    made = [e for e in progress.collect_events() if type(e).__name__ == "ChoiceMade"][0]
    assert (spent.purpose, spent.amount, spent.reference) == ("story_choice", 20, "choice:a_c")
    assert (made.fragment_id, made.choice_id, made.next_fragment, made.cost) == (
        "a",
        "a_c",
        "c",
        20,
    )


def test_rewards_are_granted_once_even_on_revisit(story: Story) -> None:
    p = player()
    progress = started(p, story)
    for choice in ["a_b", "b_a", "a_b", "b_a", "a_b"]:
        take_choice(progress, p, story, 1, choice, cause())
    awards = [e for e in p.collect_events() if type(e).__name__ == "PointsAwarded"]
    assert [(e.reference, e.amount) for e in awards] == [("fragment:b", 10)]
    assert p.balance == 15
    unlocked = [e for e in progress.collect_events() if type(e).__name__ == "ClueUnlocked"]
    assert len(unlocked) == 1


def test_the_same_update_twice_is_a_duplicate(story: Story) -> None:
    p = player()
    progress = started(p, story)
    update = cause()
    take_choice(progress, p, story, 1, "a_b", update)
    with pytest.raises(DuplicateCommand):
        take_choice(progress, p, story, 1, "b_a", update)


def test_begin_refuses_a_vip_start_for_a_free_player() -> None:
    vip_start = SMALL_STORY.replace("start: a", "start: d")
    story = Story.model_validate(__import__("yaml").safe_load(vip_start))
    with pytest.raises(VipRequired):
        begin(player(), story, 1, cause())


# ----- relocation -----------------------------------------------------------------------------


def test_relocation_walks_back_the_players_own_path(story: Story) -> None:
    v2 = small_story(WITHOUT_B).story
    p = player()
    progress = started(p, story)
    take_choice(progress, p, story, 1, "a_b", cause())
    progress.collect_events()
    assert progress.stranded(v2) and progress.relocation_target(v2, vip=False) == "a"
    assert progress.relocate(v2, 2, vip=False, reason="fragment_removed", cause=cause())
    (event,) = progress.collect_events()
    assert type(event).__name__ == "ProgressRelocated"
    assert (event.from_fragment, event.to_fragment, event.story_version, event.reason) == (
        "b",
        "a",
        2,
        "fragment_removed",
    )
    assert progress.fragment_id == "a" and progress.story_version == 2
    assert not progress.relocate(v2, 2, vip=False, reason="again", cause=cause())
    assert progress.collect_events() == []


def test_relocation_skips_vip_fragments_for_free_players_and_falls_back_to_start() -> None:
    story = small_story().story
    p = player(vip_days=1)
    progress = started(p, story)
    take_choice(progress, p, story, 1, "a_v", cause())
    take_choice(progress, p, story, 1, "c_d", cause())  # on d (VIP)
    # A version where c and d are gone and e (VIP) is new: free players go back to a.
    assert progress.trail == ["a", "c", "d"]
    v3 = Story.model_validate(
        {
            **story.canonical_dict(),
            "fragments": [f for f in story.canonical_dict()["fragments"] if f["id"] in {"a", "b"}],
        }
    )
    assert progress.relocation_target(v3, vip=False) == "a"
    gone = Story.model_validate(
        {
            **story.canonical_dict(),
            "start": "b",
            "fragments": [story.canonical_dict()["fragments"][1]],
        }
    )
    assert progress.relocation_target(gone, vip=True) == "b"  # nothing on the path: the start


# ----- the Story aggregate ----------------------------------------------------------------------


def test_story_versions_publish_only_valid_new_content() -> None:
    loaded = small_story()
    aggregate = StoryVersions.create("prueba", cause())
    with pytest.raises(StoryNotPublished):
        aggregate.story()
    first = aggregate.publish(loaded, cause())
    assert first is not None and first.version == 1
    assert first.content_hash == loaded.story.content_hash
    assert first.fragment_ids == {"a", "b", "c", "d"} and first.start == "a"
    assert aggregate.publish(loaded, cause()) is None  # same content: nothing new
    second = aggregate.publish(small_story(WITHOUT_B), cause())
    assert second is not None and second.version == 2
    events = aggregate.collect_events()
    assert [type(e).__name__ for e in events] == [
        "StoryCreated",
        "StoryPublished",
        "StoryPublished",
    ]
    published = events[1]
    assert (published.slug, published.version, published.start) == ("prueba", 1, "a")
    assert published.fragment_ids == ["a", "b", "c", "d"]
    assert aggregate.story().content_hash == small_story(WITHOUT_B).story.content_hash


def test_story_versions_refuse_a_story_with_problems() -> None:
    broken = small_story(SMALL_STORY.replace("next: b}", "next: nowhere}"))
    aggregate = StoryVersions.create("prueba", cause())
    aggregate.collect_events()
    with pytest.raises(InvalidStory) as refused:
        aggregate.publish(broken, cause())
    assert refused.value.code == "invalid_story"
    codes = {p["code"] for p in refused.value.details["problems"]}
    assert "dangling_link" in codes
    assert aggregate.collect_events() == [] and aggregate.latest is None
    other = parse_story(SMALL_STORY.replace("slug: prueba", "slug: otra"))
    with pytest.raises(InvalidStory):
        aggregate.publish(other, cause())
