"""An immutable set that only grows, sharing structure between versions.

Aggregates remember every post a user reacted to, every poll answered, every fragment visited:
sets that grow for the life of the account. The command path copies an aggregate out of the
cache for every command (so a refused command cannot corrupt the cached one), and a plain set
would be copied, then freed, in full each time: O(history) per command, a large share of the
group-commit writer's time for users with a few hundred reactions (figures in
docs/performance.md, item 11). A `GrowSet` is never
mutated, so a copy is the same object, and adding an element builds a new `GrowSet` that shares
all but a few of the old one's chunks.

Chunks merge like a binary counter (a new chunk absorbs every older chunk no larger than it),
so a set of n elements has O(log n) chunks, membership is O(log n) hash lookups, and each
element is copied O(log n) times over its life.

A set read back from a snapshot keeps its strings *packed*: one string, the elements separated
by spaces, searched with `str.__contains__`. Hashing every element of a big set on each load was
most of the cost of loading a long-lived Player; searching the packed text is far cheaper
(docs/performance.md, item 15). Elements added later go to hashed chunks as before.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Set
from itertools import chain
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Hashable)


_ORDER_TAIL_MAX = 256
"""Past this many elements added since the last sort, the next sort starts afresh."""

SEPARATOR = " "
"""Separates packed elements; a string that contains it is kept in a hashed chunk instead."""


class GrowSet(Set[T], Generic[T]):
    """Immutable, grow-only set: `added(x)` returns a new set; equal to any set of the same
    elements."""

    __slots__ = ("_packed", "_chunks", "_size", "_order")

    def __init__(self, elements: Iterable[T] = ()) -> None:
        chunk = frozenset(elements)
        self._packed = ""
        self._chunks: tuple[frozenset[T], ...] = (chunk,) if chunk else ()
        self._size = len(chunk)
        self._order: tuple[list[T], tuple[T, ...]] | None = None

    @classmethod
    def unpacked(
        cls, packed: str | None, others: Iterable[T] = (), strings: int | None = None
    ) -> GrowSet[T]:
        """The set of the strings in `packed` (joined by SEPARATOR, none containing it; None for
        no strings) and of `others`, as `packed_parts` wrote them: distinct, none hashed here.
        `strings`, how many are packed, saves counting them (measurable on big sets)."""
        chunk = frozenset(others)
        chunks = (chunk,) if chunk else ()
        if packed is None:
            return cls._of("", chunks, len(chunk))
        if strings is None:
            strings = packed.count(SEPARATOR) + 1
        return cls._of(f"{SEPARATOR}{packed}{SEPARATOR}", chunks, strings + len(chunk))

    def packed_parts(self) -> tuple[str | None, list[T]]:
        """(the packed strings, sorted and joined by SEPARATOR, or None; the other elements).

        Sorted so that equal sets are stored alike. The order is remembered, and the sets grown
        from this one carry it with the elements added since (`_order`), so the next snapshot
        of an aggregate merges a few new elements into a sorted run instead of sorting every
        element from hash order again (docs/performance.md, item 21)."""
        if self._order is not None:
            known, added = self._order
            ordered = sorted_elements([*known, *added]) if added else known
        else:
            ordered = sorted_elements(self)
        self._order = (ordered, ())
        try:
            packed = SEPARATOR.join(ordered)  # type: ignore[arg-type]  # T may not be str: TypeError
        except TypeError:  # not all strings
            packed = None
        if packed is not None and packed.count(SEPARATOR) == len(ordered) - 1:
            return (packed if ordered else None), []
        strings: list[str] = []
        others: list[T] = []
        for element in ordered:
            text: object = element  # narrowed below, while `element` keeps its type T
            if isinstance(text, str) and SEPARATOR not in text:
                strings.append(text)
            else:
                others.append(element)
        return (SEPARATOR.join(strings) if strings else None), others

    @classmethod
    def _of(cls, packed: str, chunks: tuple[frozenset[T], ...], size: int) -> GrowSet[T]:
        grown = object.__new__(cls)
        grown._packed = packed
        grown._chunks = chunks
        grown._size = size
        grown._order = None
        return grown

    def added(self, element: T) -> GrowSet[T]:
        """This set with `element` (the same set if it is already in)."""
        if element in self:
            return self
        chunks = list(self._chunks)
        chunk: frozenset[T] = frozenset((element,))
        while chunks and len(chunks[-1]) <= len(chunk):
            chunk = chunks.pop() | chunk
        chunks.append(chunk)
        grown = GrowSet._of(self._packed, tuple(chunks), self._size + 1)
        order = self._order  # set by `packed_parts`, maybe on the snapshot thread
        if order is not None and len(order[1]) < _ORDER_TAIL_MAX:
            grown._order = (order[0], (*order[1], element))
        return grown

    def __contains__(self, element: object) -> bool:
        if (
            self._packed
            and isinstance(element, str)
            and SEPARATOR not in element
            and f"{SEPARATOR}{element}{SEPARATOR}" in self._packed
        ):
            return True
        return any(element in chunk for chunk in self._chunks)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[T]:
        if self._packed:
            strings: list[Any] = self._packed[1:-1].split(SEPARATOR)
            return chain(strings, chain.from_iterable(self._chunks))
        return chain.from_iterable(self._chunks)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Set):  # a GrowSet, a set, a frozenset...
            return self._size == len(other) and all(element in other for element in self)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to mutable sets, so not hashable

    def __copy__(self) -> GrowSet[T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> GrowSet[T]:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (GrowSet, (list(self),))

    def __repr__(self) -> str:
        return f"GrowSet({sorted(self, key=repr)!r})"


def sorted_elements(elements: Iterable[Any]) -> list[Any]:
    """Sorted so that equal sets are stored alike; mixed types fall back to repr order."""
    try:
        return sorted(elements)
    except TypeError:
        return sorted(elements, key=repr)
