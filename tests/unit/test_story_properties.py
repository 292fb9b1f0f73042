"""Random walks over the bundled story graph, as a free and as a VIP player (pure: no aggregates).

The walker plays by the rules the application enforces: it only presses choices `choices_for`
offers, a choice into a VIP fragment refuses a free player (the VIP gate), a paid choice needs the
balance and is paid once, and a fragment's reward is granted once. Whatever the path, a player is
never stuck outside an ending, a free player never stands on VIP content, and chapters complete in
order. A second property checks the validator's reachability and trap checks on random graphs
against a naive fixpoint; a third walks random stories with clues: wherever a player can get stuck
outside an ending, validation reports that fragment, so a story that validates traps no one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import yaml
from dianabot.adapters.story_file import bundled_story_file, load_bundled_story
from dianabot.domain.story import Choice, Story
from dianabot.domain.story_validation import validate_story
from hypothesis import given, settings
from hypothesis import strategies as st

STORY = load_bundled_story().story

# VIP-ness computed from the raw file, independently of Story.is_vip_fragment.
RAW = yaml.safe_load(bundled_story_file().read_text("utf-8"))
VIP_CHAPTERS = {c["number"] for c in RAW["chapters"] if c["vip"]}
RAW_VIP = {f["id"]: f.get("vip", f["chapter"] in VIP_CHAPTERS) for f in RAW["fragments"]}


@dataclass
class Walker:
    vip: bool
    balance: int
    at: str = ""
    clues: set[str] = field(default_factory=set)
    rewarded: set[str] = field(default_factory=set)
    paid: set[str] = field(default_factory=set)
    completed: list[int] = field(default_factory=list)
    gate_hits: int = 0
    story: Story = STORY

    def enter(self, fragment_id: str) -> None:
        self.completed.extend(self.story.completed_chapters(self.at or None, fragment_id))
        self.at = fragment_id
        fragment = self.story.fragment(fragment_id)
        if fragment.reward is not None and fragment_id not in self.rewarded:
            self.rewarded.add(fragment_id)
            self.balance += fragment.reward.besitos
            if fragment.reward.clue is not None:
                self.clues.add(fragment.reward.clue)

    def options(self) -> list[Choice]:
        allowed = []
        for choice in self.story.choices_for(self.at, vip=self.vip, clues=self.clues):
            assert choice.next in self.story.fragment_ids
            if not self.vip and self.story.is_vip_fragment(choice.next):
                self.gate_hits += 1  # refused: vip_required
                continue
            if choice.id not in self.paid and choice.cost > self.balance:
                continue  # refused: insufficient_points
            allowed.append(choice)
        return allowed

    def take(self, choice: Choice) -> None:
        if choice.cost and choice.id not in self.paid:
            self.paid.add(choice.id)
            self.balance -= choice.cost
        self.enter(choice.next)


@settings(max_examples=300, deadline=None)
@given(
    vip=st.booleans(),
    balance=st.integers(min_value=0, max_value=STORY.max_free_cost),
    picks=st.lists(st.integers(min_value=0, max_value=10**6), max_size=120),
)
def test_random_walks_stay_in_bounds_and_never_get_stuck(
    vip: bool, balance: int, picks: list[int]
) -> None:
    walker = Walker(vip=vip, balance=balance)
    walker.enter(STORY.start)
    options = walker.options()
    for pick in picks:
        if not options:
            break
        walker.take(options[pick % len(options)])
        assert walker.at in STORY.fragment_ids
        assert vip or not RAW_VIP[walker.at], f"free player on VIP fragment {walker.at}"
        assert walker.balance >= 0
        options = walker.options()

    # The walk either continues or ended in an ending: never stuck, even with 0 besitos.
    fragment = STORY.fragment(walker.at)
    assert options or fragment.is_ending, f"stuck at {walker.at}"
    if not options and not vip and fragment.choices:
        # A free ending that offers more offers it behind the VIP gate.
        assert any(STORY.is_vip_fragment(c.next) for c in fragment.choices)
    # Chapters complete in order, and an ending completes everything up to it.
    first_times = list(dict.fromkeys(walker.completed))
    assert first_times == sorted(first_times)
    if fragment.is_ending:
        assert set(walker.completed) == set(range(1, fragment.chapter + 1))
    if vip:
        assert walker.gate_hits == 0


# --- the validator against a naive model, on random graphs -----------------------------------

FRAGMENTS = st.integers(min_value=1, max_value=9)


@st.composite
def random_stories(draw: st.DrawFn) -> Story:
    n = draw(FRAGMENTS)
    ids = [f"f{i}" for i in range(n)]
    fragments = []
    for fid in ids:
        targets = draw(st.lists(st.sampled_from(ids), max_size=3))
        fragments.append(
            {
                "id": fid,
                "chapter": draw(st.sampled_from([1, 2])),
                "speaker": "Diana",
                "text": "...",
                "is_ending": draw(st.booleans()),
                "vip": draw(st.sampled_from([None, None, True, False])),
                "choices": [
                    {
                        "id": f"{fid}_{k}",
                        "label": "x",
                        "next": target,
                        "vip_only": draw(st.booleans()),
                    }
                    for k, target in enumerate(targets)
                ],
            }
        )
    return Story.model_validate(
        {
            "slug": "random",
            "title": "Random",
            "version_label": "1",
            "start": "f0",
            "chapters": [
                {"number": 1, "title": "Libre", "arc": "A", "vip": False},
                {"number": 2, "title": "VIP", "arc": "B", "vip": True},
            ],
            "fragments": fragments,
        }
    )


def naive_reach(story: Story, *, free: bool) -> set[str]:
    if free and story.is_vip_fragment(story.start):
        return set()
    reach = {story.start}
    changed = True
    while changed:
        changed = False
        for fid in list(reach):
            for choice in story.fragment(fid).choices:
                blocked = free and (choice.vip_only or story.is_vip_fragment(choice.next))
                if not blocked and choice.next not in reach:
                    reach.add(choice.next)
                    changed = True
    return reach


def can_end(story: Story) -> set[str]:
    """Fragments from which some ending is reachable (naive fixpoint)."""
    good = set(story.endings)
    changed = True
    while changed:
        changed = False
        for fragment in story.fragments:
            if fragment.id not in good and any(c.next in good for c in fragment.choices):
                good.add(fragment.id)
                changed = True
    return good


@settings(max_examples=300, deadline=None)
@given(random_stories())
def test_validator_agrees_with_a_naive_model(story: Story) -> None:
    problems = validate_story(story)
    by_code: dict[str, set[str]] = {}
    for problem in problems:
        by_code.setdefault(problem.code, set()).add(problem.fragment_id)

    vip_reach = naive_reach(story, free=False)
    free_reach = naive_reach(story, free=True)
    free_ids = {f.id for f in story.fragments if not story.is_vip_fragment(f.id)}
    assert by_code.get("unreachable_vip", set()) == story.fragment_ids - free_ids - vip_reach
    assert by_code.get("unreachable_free", set()) == free_ids - vip_reach
    assert by_code.get("free_behind_vip", set()) == (free_ids & vip_reach) - free_reach
    dead = {f.id for f in story.fragments if not f.choices and not f.is_ending}
    assert by_code.get("dead_end", set()) == dead

    # Trap detection is complete: if no fragment is a dead end or in a loop with no exit,
    # every fragment can reach an ending; and a reported loop member really cannot.
    traps = by_code.get("dead_end", set()) | by_code.get("cycle_no_exit", set())
    if not traps:
        assert can_end(story) == story.fragment_ids
    assert not (by_code.get("cycle_no_exit", set()) & can_end(story))


# --- traps: where a player can get stuck, validation says so --------------------------------

CLUES = ("llave", "mapa")
STUCK_CODES = {"dead_end", "free_trap", "clue_trap"}


@st.composite
def clued_stories(draw: st.DrawFn) -> Story:
    """Random stories with one or two clues: rewards grant them, choices may require them."""
    story = draw(random_stories())
    clues = CLUES[: draw(st.integers(min_value=1, max_value=len(CLUES)))]
    maybe_clue = st.sampled_from([None, *clues])
    data = story.model_dump()
    data["clues"] = [{"id": c, "name": c, "description": c} for c in clues]
    for fragment in data["fragments"]:
        clue = draw(maybe_clue)
        fragment["reward"] = None if clue is None else {"besitos": 0, "clue": clue}
        for choice in fragment["choices"]:
            choice["requires_clue"] = draw(maybe_clue)
    return Story.model_validate(data)


def stuck_states(story: Story, *, vip: bool) -> set[str]:
    """Every fragment where some player of this kind can stand with no choice left, not at an
    ending: an exhaustive search over (fragment, clues held), the game's own rules."""
    if not vip and story.is_vip_fragment(story.start):
        return set()
    walker = Walker(vip=vip, balance=0, story=story)
    walker.enter(story.start)
    first = (walker.at, frozenset(walker.clues))
    seen = {first}
    queue = deque([first])
    stuck = set()
    while queue:
        at, held = queue.popleft()
        walker.at, walker.clues = at, set(held)
        options = walker.options()
        if not options and not story.fragment(at).is_ending:
            stuck.add(at)
        for choice in options:
            reward = story.fragment(choice.next).reward
            gained = {reward.clue} if reward is not None and reward.clue is not None else set()
            state = (choice.next, held | gained)
            if state not in seen:
                seen.add(state)
                queue.append(state)
    return stuck


@settings(max_examples=400, deadline=None)
@given(
    story=clued_stories(),
    vip=st.booleans(),
    picks=st.lists(st.integers(min_value=0, max_value=10**6), max_size=40),
)
def test_a_story_that_validates_traps_no_player(story: Story, vip: bool, picks: list[int]) -> None:
    problems = validate_story(story)
    reported = {p.fragment_id for p in problems if p.code in STUCK_CODES}

    # Every place a player can be stuck outside an ending is reported, whatever the path.
    assert stuck_states(story, vip=vip) <= reported
    if len(story.clues) == 1:
        # With one clue there is no other clue to follow on the way: clue_trap is exact.
        clue_traps = {p.fragment_id for p in problems if p.code == "clue_trap"}
        assert clue_traps <= stuck_states(story, vip=True) | stuck_states(story, vip=False)

    # And a random walk, as the game plays it, never ends stuck in an unreported fragment.
    if not vip and story.is_vip_fragment(story.start):
        return
    walker = Walker(vip=vip, balance=0, story=story)
    walker.enter(story.start)
    options = walker.options()
    for pick in picks:
        if not options:
            break
        walker.take(options[pick % len(options)])
        options = walker.options()
    if not options and not story.fragment(walker.at).is_ending:
        assert walker.at in reported, f"stuck at {walker.at}, not reported: {problems}"
        assert problems, "a story that validates trapped a player"
