"""Random walks through the bundled story via the application (memory store).

Free and VIP players with random balances press random buttons (any choice of the current
fragment, including vip_only and clue-gated ones, and now and then a button of another
fragment). Whatever they press, from the recorded history:
- a player never enters a fragment they may not (VIP content without VIP, a clue-gated choice
  without the clue, a choice not on the fragment they stood on);
- a paid choice is paid at most once, and a fragment's reward granted at most once;
- the balance never goes negative and equals seed + rewards - payments;
- the progress always points at an existing fragment, and refusals record nothing (except the
  one VipGateHit a VIP refusal records).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.story_file import load_bundled_story
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.ids import player_id, progress_id
from dianabot.domain.story import Story
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from tests.conftest import ADMIN_ID, make_settings

STORY: Story = load_bundled_story().story
ALL_CHOICES = sorted(c.id for f in STORY.fragments for c in f.choices)
_users = count(10_000)
_updates = count(1)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[DianaApplication, ManualClock]]:
    clock = ManualClock()
    with bootstrap(make_settings("memory://"), clock=clock) as wired:
        assert wired.app.publish_story(load_bundled_story(), Origin.admin(ADMIN_ID)).ok
        yield wired.app, clock


def tg(user: int) -> Origin:
    return Origin.telegram(next(_updates), user)


def history(app: DianaApplication, user: int) -> list[Any]:
    """Every event of the user's Player and StoryProgress, in commit order."""
    mine = {player_id(user), progress_id(user, STORY.slug)}
    return [
        app.mapper.to_domain_event(n)
        for n in app.recorder.select_notifications(1, 1_000_000)
        if n.originator_id in mine
    ]


press = st.tuples(st.just("press"), st.integers(0, 10))  # the i-th choice of the current fragment
step = st.one_of(
    *([press] * 8),  # mostly walking on
    st.tuples(st.just("foreign"), st.sampled_from(ALL_CHOICES)),  # any button of the story
    st.tuples(st.just("days"), st.integers(1, 12)),  # time passes (a VIP period may end)
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    vip_days=st.sampled_from([0, 0, 30, 365]),
    balance=st.one_of(st.just(0), st.integers(0, 300)),
    steps=st.lists(step, min_size=70, max_size=200),
)
def test_random_walks_keep_every_story_invariant(
    world: tuple[DianaApplication, ManualClock],
    vip_days: int,
    balance: int,
    steps: list[tuple[str, Any]],
) -> None:
    app, clock = world
    user = next(_users)
    assert app.register_player(user, "walker", tg(user)).ok
    if balance:
        assert app.grant_points(ADMIN_ID, user, balance, "seed", Origin.admin(ADMIN_ID)).ok
    if vip_days:
        assert app.grant_vip(
            user, vip_days, "stars", "charge", Origin.system("stars", str(user))
        ).ok
    assert app.start_story(user, tg(user)).ok
    outcomes: Counter[str] = Counter()

    for kind, value in steps:
        if kind == "days":
            clock.advance(days=value)
            app.expire_due_vips()
            continue
        progress = app.get_progress(user)
        assert progress is not None and STORY.has_fragment(progress.fragment_id)
        choices = STORY.fragment(progress.fragment_id).choices
        if kind == "press":
            if not choices:
                continue
            choice_id = choices[value % len(choices)].id
        else:
            choice_id = value
        before = app.recorder.max_notification_id()
        result = app.make_choice(user, choice_id, tg(user))
        outcomes[result.outcome] += 1
        note(f"outcome {result.outcome}")
        assert result.outcome in {
            "ok",
            "invalid_choice",
            "vip_required",
            "insufficient_points",
            "clue_required",
        }, result
        written = app.recorder.max_notification_id() - before
        if result.outcome == "vip_required":
            assert result.event_names() == ["VipGateHit"] and written == 1
        elif not result.ok:
            assert result.events == () and written == 0

    note(
        f"reached chapter {max(STORY.fragment(f).chapter for f in app.get_progress(user).visited)}"
    )
    check_history(app, user, balance)


def check_history(app: DianaApplication, user: int, seed: int) -> None:
    vip_until = None
    fragment = None
    clues: set[str] = set()
    pending_choice: tuple[str, str] | None = None
    spent: Counter[str] = Counter()
    rewarded: Counter[str] = Counter()
    balance = 0
    for event in history(app, user):
        name = type(event).__name__
        if name == "VipGranted":
            vip_until = event.until
        elif name == "StoryStarted":
            fragment = event.fragment_id
        elif name == "ChoiceMade":
            assert event.fragment_id == fragment, "a choice of another fragment was taken"
            choice = STORY.choice(fragment, event.choice_id)
            assert choice is not None and choice.next == event.next_fragment
            vip = vip_until is not None and event.timestamp < vip_until
            if not vip:
                assert not choice.vip_only and not STORY.is_vip_fragment(choice.next)
                assert not STORY.is_vip_fragment(fragment)
            if choice.requires_clue is not None:
                assert choice.requires_clue in clues, "a clue-gated choice without the clue"
            pending_choice = (event.choice_id, event.next_fragment)
        elif name == "FragmentEntered":
            assert STORY.has_fragment(event.fragment_id)
            if event.via_choice is not None:
                assert pending_choice == (event.via_choice, event.fragment_id)
            fragment = event.fragment_id
        elif name == "ClueUnlocked":
            clues.add(event.clue)
        elif name == "PointsSpent":
            assert event.purpose == "story_choice"
            spent[event.reference] += 1
            balance -= event.amount
            assert event.amount == _cost(event.reference)
        elif name == "PointsAwarded":
            if event.source == "story":
                rewarded[event.reference] += 1
            balance += event.amount
        elif name == "PointsAdjusted":
            balance += event.amount
        assert balance >= 0
    assert all(n == 1 for n in spent.values()), f"paid twice: {spent}"
    assert all(n == 1 for n in rewarded.values()), f"rewarded twice: {rewarded}"
    player = app.get_player(user)
    progress = app.get_progress(user)
    assert player.balance == balance >= 0
    rewards = sum(STORY.fragment(ref.split(":", 1)[1]).reward.besitos for ref in rewarded)
    assert player.balance == seed + rewards - sum(_cost(ref) for ref in spent)
    assert progress.fragment_id == fragment and STORY.has_fragment(fragment)
    assert progress.clues == clues


def _cost(reference: str) -> int:
    choice_id = reference.split(":", 1)[1]
    owner = STORY.fragment_of_choice(choice_id)
    assert owner is not None
    choice = STORY.choice(owner, choice_id)
    assert choice is not None
    return choice.cost
