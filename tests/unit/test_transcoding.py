"""The stored JSON format: the fast path writes the library's bytes, and sets read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from hypothesis import given
from hypothesis import strategies as st

from application.transcoding import FlatJSONTranscoder, GrowSetAsList, SetAsList
from domain.growset import GrowSet


def transcoders() -> tuple[JSONTranscoder, FlatJSONTranscoder]:
    library, fast = JSONTranscoder(), FlatJSONTranscoder()
    for transcoder in (library, fast):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), SetAsList()):
            transcoder.register(transcoding)
        transcoder.register(GrowSetAsList())
    return library, fast


LIBRARY, FAST = transcoders()

flat_values = st.one_of(
    st.text(),  # every code point: quotes, backslashes, control characters, emoji
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3)), None])),
)


@given(st.dictionaries(st.text(), flat_values, max_size=12))
def test_flat_states_are_written_byte_for_byte_as_the_library_writes_them(
    state: dict[str, Any],
) -> None:
    try:
        expected = LIBRARY.encode(state)
    except UnicodeEncodeError:  # a lone surrogate: neither can write it
        return
    assert FAST._flat(state) is not None  # the fast path is the one under test
    assert FAST.encode(state) == expected
    assert FAST.decode(expected) == LIBRARY.decode(expected)


def test_values_outside_the_fast_path_take_the_library_path() -> None:
    state = {
        "id": uuid4(),
        "amount": Decimal("1.50"),
        "ratio": 0.1,
        "huge": 2**70,
        "nested": {"at": datetime(2026, 3, 1, tzinfo=UTC), "posts": ["a", "b"]},
        "seen": GrowSet(["b", "a"]),
        "plain": {"y", "x"},
    }
    assert FAST.encode(state) == LIBRARY.encode(state)


def test_sets_are_stored_sorted_and_read_back_as_grow_sets() -> None:
    stored = FAST.encode({"seen": GrowSet(["post:2", "post:1"]), "old": {"b", "a"}})
    assert stored == (
        b'{"seen":{"_type_":"set","_data_":["post:1","post:2"]},'
        b'"old":{"_type_":"set","_data_":["a","b"]}}'
    )
    state = FAST.decode(stored)
    assert isinstance(state["seen"], GrowSet) and isinstance(state["old"], GrowSet)
    assert state == {"seen": {"post:1", "post:2"}, "old": {"a", "b"}}
    mixed = FAST.encode({"mixed": {1, "1"}})
    assert FAST.decode(mixed)["mixed"] == {1, "1"}
