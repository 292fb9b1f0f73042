"""GrowSet: an immutable grow-only set that behaves like a set and shares structure."""

from __future__ import annotations

import copy

from hypothesis import given
from hypothesis import strategies as st

from domain.growset import GrowSet


@given(st.lists(st.integers(min_value=0, max_value=300)))
def test_adding_one_by_one_gives_the_set_of_what_was_added(elements: list[int]) -> None:
    grown: GrowSet[int] = GrowSet()
    versions = [grown]
    for element in elements:
        grown = grown.added(element)
        versions.append(grown)
    assert grown == set(elements) and set(elements) == grown
    assert len(grown) == len(set(elements))
    assert sorted(grown) == sorted(set(elements))
    for element in range(-1, 302):
        assert (element in grown) == (element in set(elements))
    for count, version in enumerate(versions):  # older versions are untouched
        assert version == set(elements[:count])


def test_a_grow_set_has_few_chunks_and_copies_are_free() -> None:
    grown: GrowSet[str] = GrowSet()
    for n in range(10_000):
        grown = grown.added(f"post:{n}")
    assert len(grown._chunks) <= 14  # one per set bit of 10,000 at most
    assert copy.deepcopy(grown) is grown and copy.copy(grown) is grown
    assert grown.added("post:5") is grown  # already in: nothing new to build
    assert GrowSet(["a", "b"]) == GrowSet(["b"]).added("a")
    assert GrowSet(["a"]) != GrowSet(["b"]) and GrowSet(["a"]) != {"a", "b"}
    assert GrowSet(["a"]) != ["a"]
