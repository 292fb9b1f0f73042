"""What a well-formed story can still get wrong: links, reachability, dead ends, loops, clues,
traps for free players or players without a clue, and amounts the game would refuse.

`validate_story` takes a `LoadedStory` (lines from the file's `StorySourceMap`) or a bare `Story`
(built in code: every line is None) and returns every problem with a stable code. It is pure, so
publishing (StoryVersions) runs it on the domain side and the CLI runs it on a file.
See docs/story-format.md for every code.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dianabot.domain.rules import MAX_AMOUNT
from dianabot.domain.story import Choice, Fragment, LoadedStory, Story, StorySourceMap

Report = Callable[[str, str, str | None, int | None], None]
"""report(code, message, fragment_id, line): how the checks hand a problem back."""


@dataclass(frozen=True)
class StoryProblem:
    """One thing wrong with a story, with a stable `code` (see docs/story-format.md)."""

    code: str
    message: str
    file: str
    fragment_id: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        who = f"fragment {self.fragment_id!r}: " if self.fragment_id else ""
        return f"{where}: {who}{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PROBLEM_CODES = (
    "dangling_link",
    "bad_chapter",
    "dead_end",
    "unreachable_free",
    "unreachable_vip",
    "free_behind_vip",
    "cycle_no_exit",
    "clue_never_granted",
    "unaffordable_cost",
    "amount_over_cap",
    "free_trap",
    "clue_trap",
)


def validate_story(loaded: LoadedStory | Story) -> list[StoryProblem]:
    """Every problem of a well-formed story, sorted by line. An empty list means publishable."""
    if isinstance(loaded, Story):
        loaded = LoadedStory(loaded, StorySourceMap(file="<story>"))
    story, src = loaded.story, loaded.source
    problems: list[StoryProblem] = []

    def report(code: str, message: str, fragment_id: str | None, line: int | None) -> None:
        problems.append(StoryProblem(code, message, src.file, fragment_id, line))

    ids = story.fragment_ids
    clue_ids = {c.id for c in story.clues}
    chapter_numbers = {c.number for c in story.chapters}

    if story.start not in ids:
        report(
            "dangling_link",
            f"start points to unknown fragment {story.start!r}",
            None,
            src.start_line,
        )

    for frag in story.fragments:
        if frag.chapter not in chapter_numbers:
            report(
                "bad_chapter",
                f"chapter {frag.chapter} is not declared in `chapters`",
                frag.id,
                src.fragment_line(frag.id, "chapter"),
            )
        if (
            frag.reward is not None
            and frag.reward.clue is not None
            and frag.reward.clue not in clue_ids
        ):
            report(
                "dangling_link",
                f"reward grants unknown clue {frag.reward.clue!r}",
                frag.id,
                src.fragment_line(frag.id, "reward.clue"),
            )
        if frag.reward is not None and frag.reward.besitos > MAX_AMOUNT:
            # Player.award refuses it, so entering this fragment would fail every time.
            report(
                "amount_over_cap",
                f"reward of {frag.reward.besitos} besitos is over the per-amount cap of "
                f"{MAX_AMOUNT}: the game refuses to award it, so no one can enter this fragment",
                frag.id,
                src.fragment_line(frag.id, "reward.besitos"),
            )
        if not frag.choices and not frag.is_ending:
            report(
                "dead_end",
                "has no choices and is not marked `is_ending: true`",
                frag.id,
                src.fragment_line(frag.id),
            )
        for choice in frag.choices:
            if choice.next not in ids:
                report(
                    "dangling_link",
                    f"choice {choice.id!r} leads to unknown fragment {choice.next!r}",
                    frag.id,
                    src.choice_line(choice.id, "next"),
                )
            if choice.requires_clue is not None and choice.requires_clue not in clue_ids:
                report(
                    "dangling_link",
                    f"choice {choice.id!r} requires unknown clue {choice.requires_clue!r}",
                    frag.id,
                    src.choice_line(choice.id, "requires_clue"),
                )
            if choice.cost > MAX_AMOUNT:
                # Player.spend refuses it (or the balance never gets there): never taken.
                report(
                    "amount_over_cap",
                    f"choice {choice.id!r} costs {choice.cost} besitos, over the per-amount cap "
                    f"of {MAX_AMOUNT}: the game refuses to charge it, so no one can take it",
                    frag.id,
                    src.choice_line(choice.id, "cost"),
                )

    _check_cycles(story, src, report)
    if story.start in ids:
        # With no start every fragment would be unreachable: one dangling_link says it better.
        _check_reachability(story, src, clue_ids, report)

    problems.sort(key=lambda p: (p.line is None, p.line or 0, p.code, p.fragment_id or ""))
    return problems


def _successors(story: Story, *, free: bool) -> dict[str, list[str]]:
    """The story graph as a free player (no VIP fragments, no vip_only choices) or VIP sees it."""
    ids = story.fragment_ids
    graph: dict[str, list[str]] = {}
    for frag in story.fragments:
        if free and story.is_vip_fragment(frag.id):
            graph[frag.id] = []
            continue
        graph[frag.id] = [
            c.next
            for c in frag.choices
            if c.next in ids and not (free and (c.vip_only or story.is_vip_fragment(c.next)))
        ]
    return graph


def _reach(graph: Mapping[str, list[str]], sources: Iterable[str]) -> set[str]:
    """Breadth-first: every node reachable from any source (sources included)."""
    seen = set(sources)
    queue = deque(seen)
    while queue:
        for nxt in graph[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _check_reachability(
    story: Story, src: StorySourceMap, clue_ids: set[str], report: Report
) -> None:
    vip_graph = _successors(story, free=False)
    free_graph = _successors(story, free=True)
    vip_reach = _reach(vip_graph, [story.start])
    free_reach = set() if story.is_vip_fragment(story.start) else _reach(free_graph, [story.start])

    for frag in story.fragments:
        line = src.fragment_line(frag.id)
        if story.is_vip_fragment(frag.id):
            if frag.id not in vip_reach:
                report(
                    "unreachable_vip", f"no player can reach it from {story.start!r}", frag.id, line
                )
        elif frag.id not in vip_reach:
            report(
                "unreachable_free",
                f"no player, free or VIP, can reach it from {story.start!r}",
                frag.id,
                line,
            )
        elif frag.id not in free_reach:
            report(
                "free_behind_vip",
                "free fragment reachable only through VIP fragments or vip_only choices",
                frag.id,
                line,
            )

    granters: dict[str, list[str]] = {}
    for frag in story.fragments:
        if frag.reward is not None and frag.reward.clue is not None:
            granters.setdefault(frag.reward.clue, []).append(frag.id)
    holders: dict[tuple[str, bool], set[str]] = {}

    def can_hold(clue: str, fragment_id: str, *, free: bool) -> bool:
        # Some path start -> granter -> ... -> fragment exists for this kind of player.
        if (clue, free) not in holders:
            graph, reach = (free_graph, free_reach) if free else (vip_graph, vip_reach)
            sources = [g for g in granters.get(clue, []) if g in reach]
            holders[(clue, free)] = _reach(graph, sources)
        return fragment_id in holders[(clue, free)]

    for frag in story.fragments:
        if frag.id not in vip_reach:
            continue
        for choice in frag.choices:
            line = src.choice_line(choice.id, "requires_clue")
            needed = choice.requires_clue
            if needed is not None and needed in clue_ids:
                if not can_hold(needed, frag.id, free=False):
                    report(
                        "clue_never_granted",
                        f"choice {choice.id!r} needs clue {needed!r}, which no fragment a player "
                        "can visit before it grants",
                        frag.id,
                        line,
                    )
                elif (
                    frag.id in free_reach
                    and not choice.vip_only
                    and not can_hold(needed, frag.id, free=True)
                ):
                    report(
                        "clue_never_granted",
                        f"choice {choice.id!r} needs clue {needed!r}, which free players cannot "
                        "get before it (granted only in VIP content or on no free path)",
                        frag.id,
                        line,
                    )
            if frag.id in free_reach and not choice.vip_only and choice.cost > story.max_free_cost:
                report(
                    "unaffordable_cost",
                    f"choice {choice.id!r} costs {choice.cost} besitos, more than a free player "
                    f"can hold (max_free_cost {story.max_free_cost})",
                    frag.id,
                    src.choice_line(choice.id, "cost"),
                )

    _check_free_traps(story, src, vip_graph, free_graph, free_reach, report)
    _check_clue_traps(story, src, clue_ids, granters, report)


def _exits(story: Story, frag: Fragment, *, free: bool) -> list[Choice]:
    """The choices of `frag` this kind of player may take, clues and costs aside."""
    ids = story.fragment_ids
    return [
        c
        for c in frag.choices
        if c.next in ids and not (free and (c.vip_only or story.is_vip_fragment(c.next)))
    ]


def _check_free_traps(
    story: Story,
    src: StorySourceMap,
    vip_graph: Mapping[str, list[str]],
    free_graph: Mapping[str, list[str]],
    free_reach: set[str],
    report: Report,
) -> None:
    """Where free players get stuck outside an ending although VIP players go on.

    A free fragment free players reach whose every choice is vip_only or leads into VIP content
    (a choice into VIP content is refused with `vip_required`: they stay where they are), and a
    loop of free fragments whose only ways out are such choices. Where VIP players are stuck too,
    `dead_end` and `cycle_no_exit` already say so.
    """
    order = [f.id for f in story.fragments if f.id in free_reach]
    for fid in order:
        if story.fragment(fid).is_ending or free_graph[fid] or not vip_graph[fid]:
            continue
        report(
            "free_trap",
            "free players can go no further: every choice is vip_only or leads into VIP "
            "content, and it is not an ending",
            fid,
            src.fragment_line(fid),
        )
    position = {fid: i for i, fid in enumerate(order)}
    for component in _strongly_connected(order, free_graph):
        members = set(component)
        first = min(component, key=position.__getitem__)
        if len(component) == 1 and first not in free_graph[first]:
            continue  # not a loop: a lone fragment is judged above
        if any(story.fragment(f).is_ending for f in component):
            continue
        if any(nxt not in members for f in component for nxt in free_graph[f]):
            continue
        if not any(nxt not in members for f in component for nxt in vip_graph[f]):
            continue  # no way out for anyone: cycle_no_exit
        names = ", ".join(repr(f) for f in sorted(component, key=position.__getitem__))
        report(
            "free_trap",
            f"free players cannot leave this loop: every way out of {names} is vip_only or "
            "leads into VIP content, and none of them is an ending",
            first,
            src.fragment_line(first),
        )


def _check_clue_traps(
    story: Story,
    src: StorySourceMap,
    clue_ids: set[str],
    granters: Mapping[str, list[str]],
    report: Report,
) -> None:
    """Where a player without a clue gets stuck: every way on needs a clue they may not hold.

    A non-ending fragment is a trap when every choice the player may take requires a clue, and
    the player can reach it holding none of those clues: on a path from `start` that enters no
    fragment granting one of them and takes no choice requiring one. Other clues on the way are
    not followed (a choice needing another clue counts as taken), so the check errs on the side
    of reporting, never of letting a trap through. Checked for VIP players, then for free ones.
    """
    cache: dict[tuple[frozenset[str], bool], set[str]] = {}

    def reach_without(clues: frozenset[str], *, free: bool) -> set[str]:
        if (clues, free) not in cache:
            avoid = {g for clue in clues for g in granters.get(clue, [])}
            seen: set[str] = set()
            if story.start not in avoid and not (free and story.is_vip_fragment(story.start)):
                seen.add(story.start)
                queue = deque(seen)
                while queue:
                    for c in _exits(story, story.fragment(queue.popleft()), free=free):
                        if c.requires_clue in clues or c.next in avoid or c.next in seen:
                            continue
                        seen.add(c.next)
                        queue.append(c.next)
            cache[(clues, free)] = seen
        return cache[(clues, free)]

    for frag in story.fragments:
        if frag.is_ending:
            continue
        for free in (False, True):
            exits = _exits(story, frag, free=free)
            needed = frozenset(c.requires_clue for c in exits if c.requires_clue is not None)
            if not exits or any(c.requires_clue is None for c in exits):
                continue
            if not needed <= clue_ids:
                continue  # an unknown clue: dangling_link says it
            if frag.id not in reach_without(needed, free=free):
                continue
            who = "free players" if free else "players"
            which = " here open to free players" if free else " here"
            if len(needed) == 1:
                [clue] = needed
                what = f"without clue {clue!r}, which every choice{which} needs"
            else:
                names = " or ".join(repr(c) for c in sorted(needed))
                what = f"holding none of the clues {names}, and every choice{which} needs one"
            report(
                "clue_trap",
                f"{who} can reach it {what}: they would be stuck",
                frag.id,
                src.fragment_line(frag.id),
            )
            break


def _check_cycles(story: Story, src: StorySourceMap, report: Report) -> None:
    graph = _successors(story, free=False)
    order = [f.id for f in story.fragments]
    position = {fid: i for i, fid in enumerate(order)}
    for component in _strongly_connected(order, graph):
        members = set(component)
        first = min(component, key=position.__getitem__)
        looped = len(component) > 1 or first in graph[first]
        if not looped:
            continue
        if any(story.fragment(f).is_ending for f in component):
            continue
        if any(nxt not in members for f in component for nxt in graph[f]):
            continue
        names = ", ".join(repr(f) for f in sorted(component, key=position.__getitem__))
        report(
            "cycle_no_exit",
            f"loop with no way out and no ending: {names}",
            first,
            src.fragment_line(first),
        )


def _strongly_connected(nodes: list[str], graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so a long story cannot hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(graph[root]))]
        while work:
            node, successors = work[-1]
            descended = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    descended = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if descended:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components
