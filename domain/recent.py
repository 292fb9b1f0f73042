"""The command keys an aggregate remembers, so that a re-delivered update is applied once.

Every command checks its key against this memory, so membership must be cheap: a list scan of
256 keys was the group-commit writer's single most expensive line (the keys being cold in the
CPU cache; docs/performance.md, item 19), and the cache's copy of an aggregate for every command
copied the list too. `RecentKeys` is immutable (a copy is the same object) and holds its keys
in generations of `GENERATION`, each with a frozenset for lookups: adding a key rebuilds only
the youngest generation, and membership is a few hash lookups.

The window is "at least the last `KEPT` keys": the key numbered `n` over the aggregate's life
is in generation `n // GENERATION`, and the youngest generations that hold the last `KEPT` keys
are kept. So what is remembered depends only on the keys and how many came before them: an
aggregate rebuilt from a snapshot remembers exactly what its full replay remembers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any

KEPT = 256
"""At least this many of the most recent keys are remembered."""
GENERATION = 64
_OLDER_GENERATIONS = -(-KEPT // GENERATION)  # full generations kept beside the youngest


class RecentKeys:
    """Immutable memory of recent command keys: `remembered(key)` returns a new one."""

    __slots__ = ("_count", "_generations", "_lookups")

    def __init__(self, keys: Iterable[str] = (), count: int | None = None) -> None:
        """The memory after `count` keys (default: as many as given) of which `keys` are the
        last ones, oldest first; only the generations the window needs are kept."""
        ordered = list(keys)
        total = len(ordered) if count is None else count
        if total < len(ordered):
            raise ValueError(f"{len(ordered)} keys cannot be the last of {total}")
        first = total - len(ordered)  # the number of the first given key
        generations: list[tuple[str, ...]] = []
        start = 0
        while start < len(ordered):
            end = start + GENERATION - (first + start) % GENERATION
            generations.append(tuple(ordered[start:end]))
            start = end
        self._set(total, tuple(generations[-(_OLDER_GENERATIONS + 1) :]))

    def _set(self, count: int, generations: tuple[tuple[str, ...], ...]) -> None:
        self._count = count
        self._generations = generations
        self._lookups = tuple(frozenset(generation) for generation in generations)

    def remembered(self, key: str) -> RecentKeys:
        """This memory with `key` as the most recent."""
        grown = object.__new__(RecentKeys)
        generations, lookups = self._generations, self._lookups
        if self._count % GENERATION == 0 or not generations:  # the youngest is full: a new one
            grown._count = self._count + 1
            grown._generations = (*generations[-_OLDER_GENERATIONS:], (key,))
            grown._lookups = (*lookups[-_OLDER_GENERATIONS:], frozenset((key,)))
        else:
            grown._count = self._count + 1
            grown._generations = (*generations[:-1], (*generations[-1], key))
            grown._lookups = (*lookups[:-1], lookups[-1] | {key})
        return grown

    @property
    def count(self) -> int:
        """How many keys were ever remembered (what places the generation boundaries)."""
        return self._count

    def __contains__(self, key: object) -> bool:
        return any(key in lookup for lookup in self._lookups)

    def __iter__(self) -> Iterator[str]:
        """The remembered keys, oldest first."""
        return chain.from_iterable(self._generations)

    def __len__(self) -> int:
        return sum(map(len, self._generations))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecentKeys):
            return self._count == other._count and self._generations == other._generations
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # None, not a method: compared, never hashed

    def __copy__(self) -> RecentKeys:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RecentKeys:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (RecentKeys, (list(self), self._count))

    def __repr__(self) -> str:
        return f"RecentKeys({list(self)!r}, count={self._count})"
