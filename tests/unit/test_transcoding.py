"""The stored JSON format: the fast path writes the library's bytes, and sets read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

import orjson
from dianabot.adapters.eventstore.transcoding import (
    FlatJSONTranscoder,
    GrowSetPacked,
    RecentKeysAsList,
    RecentKeysTimed,
    SetAsList,
)
from dianabot.domain.growset import GrowSet
from dianabot.domain.recent import RecentKeys
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, UUIDAsHex
from hypothesis import given
from hypothesis import strategies as st


def transcoders() -> tuple[JSONTranscoder, FlatJSONTranscoder]:
    library, fast = JSONTranscoder(), FlatJSONTranscoder()
    for transcoder in (library, fast):
        for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO(), SetAsList()):
            transcoder.register(transcoding)
        transcoder.register(GrowSetPacked())
        transcoder.register(RecentKeysAsList())
        transcoder.register(RecentKeysTimed())
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
        b'{"seen":{"_type_":"growset","_data_":["post:1 post:2",[],2]},'
        b'"old":{"_type_":"set","_data_":["a","b"]}}'
    )
    state = FAST.decode(stored)
    assert isinstance(state["seen"], GrowSet) and isinstance(state["old"], GrowSet)
    assert state == {"seen": {"post:1", "post:2"}, "old": {"a", "b"}}
    mixed = FAST.encode({"mixed": {1, "1"}, "grown": GrowSet([1, "1", "a b"])})
    assert FAST.decode(mixed) == {"mixed": {1, "1"}, "grown": {1, "1", "a b"}}


def test_snapshots_written_before_packing_still_read_back() -> None:
    """Snapshots stored grow-only sets as plain "set" lists until packing came in, and packed
    sets without their count for a while."""
    older = b'{"reacted_posts":{"_type_":"set","_data_":["post:1","post:2"]}}'
    state = FAST.decode(older)
    assert isinstance(state["reacted_posts"], GrowSet)
    assert state["reacted_posts"] == {"post:1", "post:2"}
    uncounted = FAST.decode(b'{"seen":{"_type_":"growset","_data_":["a b c",[1]]}}')["seen"]
    assert uncounted == {"a", "b", "c", 1} and len(uncounted) == 4


def test_what_only_the_standard_json_module_reads_takes_the_library_path() -> None:
    assert FAST.decode(b'{"big":123456789012345678901234567890,"nan":NaN}')["big"] == 10**29 + (
        23456789012345678901234567890
    )


nested_values = st.recursive(
    st.one_of(
        flat_values,
        st.floats(allow_nan=False, allow_infinity=False),  # not plain: the library's path
        st.uuids(),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.sets(st.text(max_size=4), max_size=4),
        st.sets(st.text(max_size=4), max_size=4).map(GrowSet),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=6), children, max_size=4),
    ),
    max_leaves=16,
)


@given(st.dictionaries(st.text(max_size=8), nested_values, max_size=6))
def test_nested_states_are_written_and_read_as_the_library_does(state: dict[str, Any]) -> None:
    """Byte for byte on the way in (through orjson when plain), equal values on the way out."""
    try:
        expected = LIBRARY.encode(state)
    except UnicodeEncodeError:  # a lone surrogate: neither can write it
        return
    assert FAST.encode(state) == expected
    assert FAST.decode(expected) == LIBRARY.decode(expected)


def test_a_snapshot_state_takes_the_fast_path() -> None:
    state = {
        "at": datetime(2026, 3, 1, tzinfo=UTC),
        "reacted_posts": GrowSet([f"post:{n}" for n in range(100)]),
        "recent_commands": [f"react|tg:{n}" for n in range(256)],
        "nested": {"ids": [uuid4(), uuid4()], "none": None},
    }
    assert FAST._flat(state) is not None
    assert FAST.encode(state) == LIBRARY.encode(state)
    assert FAST._flat({"ratio": [0.5]}) is None  # floats: the library's path


def test_remembered_command_keys_read_back_as_the_same_memory() -> None:
    memory = RecentKeys()
    for n in range(300):
        memory = memory.remembered(f"react|tg:{n}", datetime(2026, 3, 1, tzinfo=UTC))
    stored = FAST.encode({"recent_commands": memory})
    assert stored == LIBRARY.encode({"recent_commands": memory})
    assert stored.startswith(
        b'{"recent_commands":{"_type_":"recent_keys_timed","_data_":[300,'
        b'[["2026-03-01T00:00:00+00:00",["react'
    )
    assert FAST.decode(stored) == {"recent_commands": memory}


def test_an_older_snapshots_untimed_memory_still_reads_back() -> None:
    """Snapshots written before the keys had times: read as keys of unknown time."""
    keys = [f"react|tg:{n}" for n in range(256, 300)]
    stored = b'{"m":{"_type_":"recent_keys","_data_":[300,' + orjson.dumps(keys) + b"]}}"
    memory = FAST.decode(stored)["m"]
    assert memory == RecentKeys(keys, 300) and list(memory) == keys
    assert memory.generations()[0][0] is None
