"""GrowSet: an immutable grow-only set that behaves like a set and shares structure."""

from __future__ import annotations

import copy

from dianabot.domain.growset import GrowSet
from hypothesis import given
from hypothesis import strategies as st


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


# Strings with and without the packing separator, the empty string, and a few non-strings.
elements = st.one_of(st.text(alphabet="ab :\n", max_size=4), st.integers(min_value=-3, max_value=3))


@given(st.sets(elements), st.lists(elements), st.lists(elements))
def test_a_packed_set_is_the_set_it_was_packed_from(
    packed_from: set[object], added_later: list[object], probes: list[object]
) -> None:
    original: GrowSet[object] = GrowSet(packed_from)
    packed, others = original.packed_parts()
    assert packed is None or isinstance(packed, str)
    unpacked: GrowSet[object] = GrowSet.unpacked(packed, others)
    assert unpacked == packed_from and len(unpacked) == len(packed_from)
    counted: GrowSet[object] = GrowSet.unpacked(packed, others, len(packed_from) - len(others))
    assert counted == unpacked and len(counted) == len(packed_from)
    assert sorted(map(repr, unpacked)) == sorted(map(repr, packed_from))  # each element once
    expected = set(packed_from)
    for element in added_later:
        unpacked = unpacked.added(element)
        expected.add(element)
    assert unpacked == expected and len(unpacked) == len(expected)
    for probe in [*probes, *expected, "", " ", "a b"]:
        assert (probe in unpacked) == (probe in expected)
    assert GrowSet.unpacked(*unpacked.packed_parts()) == expected


def test_strings_are_packed_and_the_rest_kept_apart() -> None:
    assert GrowSet(["post:2", "post:1"]).packed_parts() == ("post:1 post:2", [])
    assert GrowSet(["a b", "c", 1]).packed_parts() == ("c", ["a b", 1])  # repr order
    assert GrowSet().packed_parts() == (None, [])
    assert GrowSet([""]).packed_parts() == ("", [])
    empty_string_only: GrowSet[str] = GrowSet.unpacked("")
    assert "" in empty_string_only and " " not in empty_string_only
    assert len(empty_string_only) == 1 and list(empty_string_only) == [""]
    posts: GrowSet[str] = GrowSet.unpacked("post:1 post:12")
    assert "post:1" in posts and "post:12" in posts
    assert "post:2" not in posts and "post:1 post:12" not in posts and "1" not in posts


@given(st.lists(st.tuples(elements, st.booleans()), max_size=60), st.lists(elements))
def test_snapshots_of_a_growing_set_pack_what_a_fresh_set_packs(
    steps: list[tuple[object, bool]], probes: list[object]
) -> None:
    """A snapshot packs a set (`packed_parts`), and the sets grown from it remember that order
    to merge into next time. Whatever the interleaving, each packing is the one a fresh set of
    the same elements gives, and membership is unchanged."""
    grown: GrowSet[object] = GrowSet()
    expected: set[object] = set()
    for element, snapshot in steps:
        if snapshot:
            assert grown.packed_parts() == GrowSet(expected).packed_parts()
        grown = grown.added(element)
        expected.add(element)
    assert grown.packed_parts() == GrowSet(expected).packed_parts()
    assert grown == expected and len(grown) == len(expected)
    for probe in [*probes, *expected]:
        assert (probe in grown) == (probe in expected)
