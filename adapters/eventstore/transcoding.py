"""How aggregates and events become JSON in the store.

`FlatJSONTranscoder` writes exactly the bytes the library's `JSONTranscoder` writes (compact
separators, UTF-8, `{"_type_": ..., "_data_": ...}` for transcoded types), but through orjson in
one C call when a state is plain: strings, integers, booleans, None, lists and str-keyed dicts of
those, and values of registered transcodings (datetimes, UUIDs, sets). Nearly every event is
flat, and orjson encodes it in less than half the standard encoder's time (docs/performance.md,
item 12); a snapshot is plain too, and skips the standard encoder's per-value work. Anything else
(floats, subclasses, unregistered types) takes the library's path unchanged. Tests check the
two agree byte for byte.

Reading is the same idea: orjson parses, then one walk applies the library's object hook to
every dict, innermost first, as `json.loads(object_hook=...)` would. A list is only walked if
it holds containers, which a C-level scan tells (`str.join` for a list of strings). Grow-only
sets are stored packed (`GrowSetPacked`), so a big snapshot is a few long strings to parse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from dianabot.domain.growset import GrowSet, sorted_elements
from dianabot.domain.recent import RecentKeys
from eventsourcing.persistence import JSONTranscoder, Transcoding

_AS_IS = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({dict, list})
_NOT_PLAIN: Any = object()


class SetAsList(Transcoding):
    """A plain set, stored as a sorted list; read back as a `GrowSet` (older snapshots held
    the aggregates' grow-only sets as plain sets)."""

    type = set
    name = "set"

    def encode(self, obj: set[Any]) -> list[Any]:
        return sorted_elements(obj)

    def decode(self, data: list[Any]) -> GrowSet[Any]:
        return GrowSet(data)


class GrowSetPacked(Transcoding):
    """A `GrowSet` as `[packed strings or null, [other elements], how many strings are packed]`:
    see `domain.growset`. Read back without hashing its strings, which is what makes a
    long-lived Player cheap to load. (The count came later: without it, they are counted.)"""

    type = GrowSet
    name = "growset"

    def encode(self, obj: GrowSet[Any]) -> list[Any]:
        packed, others = obj.packed_parts()
        return [packed, others, len(obj) - len(others)]

    def decode(self, data: list[Any]) -> GrowSet[Any]:
        packed, others, *strings = data
        return GrowSet.unpacked(packed, others, strings[0] if strings else None)


class RecentKeysAsList(Transcoding):
    """How snapshots stored remembered command keys before they had times: `[how many ever,
    [the kept keys, oldest first]]`. Read only (older snapshots); `RecentKeysTimed` writes."""

    type = RecentKeys
    name = "recent_keys"

    def encode(self, obj: RecentKeys) -> list[Any]:
        return [obj.count, list(obj)]

    def decode(self, data: list[Any]) -> RecentKeys:
        count, keys = data
        return RecentKeys(keys, count)


class RecentKeysTimed(Transcoding):
    """An aggregate's remembered command keys as `[how many ever, [[ISO time of the newest key
    or null, [keys, oldest first]], ...]]`, a generation per pair: enough to rebuild exactly
    the memory that replaying its events builds (see `domain.recent`)."""

    type = RecentKeys
    name = "recent_keys_timed"

    def encode(self, obj: RecentKeys) -> list[Any]:
        return [
            obj.count,
            [
                [None if newest is None else newest.isoformat(), list(keys)]
                for newest, keys in obj.generations()
            ],
        ]

    def decode(self, data: list[Any]) -> RecentKeys:
        count, generations = data
        return RecentKeys.restored(
            count,
            [
                (None if newest is None else datetime.fromisoformat(newest), keys)
                for newest, keys in generations
            ],
        )


def register_transcodings(transcoder: JSONTranscoder) -> None:
    """The transcodings of the domain's value types (the library registers its own)."""
    transcoder.register(SetAsList())
    transcoder.register(GrowSetPacked())
    transcoder.register(RecentKeysAsList())  # reads older snapshots...
    transcoder.register(RecentKeysTimed())  # ...registered last, so it is the one that writes


class FlatJSONTranscoder(JSONTranscoder):
    """The library's JSON format, with a fast path for flat states (see module docstring)."""

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict:
            flat = self._flat(obj)
            if flat is not None:
                try:
                    return orjson.dumps(flat)
                except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
                    pass
        return super().encode(obj)

    def _flat(self, state: dict[Any, Any]) -> dict[str, Any] | None:
        """The state with its transcoded values replaced by what the library writes for them,
        or None if anything in it is not plain (see `_plain`)."""
        flat: dict[str, Any] = {}
        datetimes = self.types.get(datetime)
        for key, value in state.items():
            if type(key) is not str:
                return None
            kind = type(value)
            if kind in _AS_IS:  # what nearly every event holds: no call per value
                flat[key] = value
            elif kind is datetime and datetimes is not None:
                flat[key] = {"_type_": datetimes.name, "_data_": datetimes.encode(value)}
            else:
                plain = self._plain(value)
                if plain is _NOT_PLAIN:
                    return None
                flat[key] = plain
        return flat

    def _plain(self, value: Any) -> Any:
        """`value` as orjson writes it byte for byte like the library: str, int, bool and None
        as they are; lists, tuples and str-keyed dicts of plain values; a value of a type with
        a registered transcoding as `{"_type_", "_data_"}`. Anything else (floats, subclasses,
        unregistered types) is `_NOT_PLAIN`, and the whole state takes the library's path."""
        kind = type(value)
        if kind in _AS_IS:
            return value
        if kind is list or kind is tuple:
            if _only_strings(value):  # a snapshot's long lists: one C call
                return value
            items = [self._plain(item) for item in value]
            return _NOT_PLAIN if any(item is _NOT_PLAIN for item in items) else items
        if kind is dict:
            flat = self._flat(value)
            return _NOT_PLAIN if flat is None else flat
        transcoding = self.types.get(kind)
        if transcoding is None:
            return _NOT_PLAIN
        data = self._plain(transcoding.encode(value))
        if data is _NOT_PLAIN:
            return _NOT_PLAIN
        return {"_type_": transcoding.name, "_data_": data}

    def decode(self, data: bytes) -> Any:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:  # NaN, integers beyond 64 bits: what only `json` reads
            return super().decode(data)
        return self._revived(parsed)

    def _revived(self, value: Any) -> Any:
        """`value` with the object hook applied to every dict in it, innermost first."""
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(item) in _CONTAINERS:
                    value[key] = self._revived(item)
            return self._decode_obj(value)
        if (
            kind is list
            and not _only_strings(value)
            and not _CONTAINERS.isdisjoint(map(type, value))
        ):
            return [self._revived(item) for item in value]
        return value


def _only_strings(values: list[Any]) -> bool:
    """True if every element is a string: `str.join` checks that in C, several times faster than
    any per-element test (the common big list is a set of post ids)."""
    try:
        "".join(values)
    except TypeError:
        return False
    return True
