"""The command keys an aggregate remembers, so that a re-delivered update is applied once.

Telegram re-delivers an update it thinks was not received for up to 24 hours, whatever else the
user did meanwhile, so the memory is bounded by time, not by count: every key is kept while it
is younger than `RETENTION`, measured on the commands' own timestamps (the injected clock's
`Cause.at`, which every event records), and the last `KEPT` keys are kept whatever their age (a
floor, so an odd clock jump forgets nothing recent). Older keys are forgotten: a cause delivered
again after more than `RETENTION` and more than `KEPT` other commands is applied again. What
must be refused forever (a payment) is keyed by its own reference, elsewhere (`Player`).

Every command checks its key against this memory, so membership must be cheap: a list scan of
256 keys was the group-commit writer's single most expensive line (the keys being cold in the
CPU cache; docs/performance.md, item 19), and the cache's copy of an aggregate for every command
copied the list too. `RecentKeys` is immutable (a copy is the same object) and holds its keys
in generations of `GENERATION`, each with a frozenset for lookups and the time of its newest
key: adding a key rebuilds only the youngest generation, membership is a few hash lookups, and
pruning, done when a generation starts, drops whole generations whose newest key has aged out.

The key numbered `n` over the aggregate's life is in generation `n // GENERATION`, so what is
remembered depends only on the keys, their times and how many came before them: an aggregate
rebuilt from a snapshot (which stores the generations with their times) remembers exactly what
its full replay remembers. A memory from before times were kept (an older snapshot: a list, or
keys and a count) has generations of unknown time; the next key remembered dates them with its
own time, so they are kept for at least `RETENTION` more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

KEPT = 256
"""At least this many of the most recent keys are remembered, whatever their age."""
RETENTION = timedelta(hours=24)
"""Every key younger than this (on the commands' clock) is remembered: Telegram's re-delivery
window. A generation is dropped only once its newest key is older than this."""
GENERATION = 64
_OLDER_GENERATIONS = -(-KEPT // GENERATION)  # full generations kept beside the youngest


class RecentKeys:
    """Immutable memory of recent command keys: `remembered(key, at)` returns a new one."""

    __slots__ = ("_count", "_generations", "_lookups", "_newest")

    def __init__(self, keys: Iterable[str] = (), count: int | None = None) -> None:
        """The memory, of unknown times, after `count` keys (default: as many as given) of which
        `keys` are the last ones, oldest first: what an older snapshot stored. Only the
        generations the `KEPT` floor needs are kept."""
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
        kept = tuple(generations[-(_OLDER_GENERATIONS + 1) :])
        self._set(total, kept, (None,) * len(kept))

    @classmethod
    def restored(
        cls, count: int, generations: Iterable[tuple[datetime | None, Sequence[str]]]
    ) -> RecentKeys:
        """Exactly the memory a snapshot stored: how many keys ever, and each kept generation
        as (the time of its newest key or None if unknown, its keys oldest first)."""
        memory = object.__new__(cls)
        times: list[datetime | None] = []
        keys: list[tuple[str, ...]] = []
        for newest, generation in generations:
            times.append(newest)
            keys.append(tuple(generation))
        if sum(map(len, keys)) > count:
            raise ValueError(f"more keys than the {count} ever remembered")
        memory._set(count, tuple(keys), tuple(times))
        return memory

    def _set(
        self,
        count: int,
        generations: tuple[tuple[str, ...], ...],
        newest: tuple[datetime | None, ...],
    ) -> None:
        self._count = count
        self._generations = generations
        self._newest = newest
        self._lookups = tuple(frozenset(generation) for generation in generations)

    def remembered(self, key: str, at: datetime) -> RecentKeys:
        """This memory with `key`, recorded at `at`, as the most recent."""
        generations, lookups, newest = self._generations, self._lookups, self._newest
        if None in newest:  # from an older snapshot: dated now, so kept RETENTION from here
            newest = tuple(at if time is None else time for time in newest)
        grown = object.__new__(RecentKeys)
        grown._count = self._count + 1
        if self._count % GENERATION == 0 or not generations:  # the youngest is full: a new one
            horizon = at - RETENTION
            floor = len(generations) - _OLDER_GENERATIONS
            kept = [
                index
                for index, time in enumerate(newest)
                if index >= floor or (time is not None and time >= horizon)
            ]
            if len(kept) == len(generations):
                grown._generations = (*generations, (key,))
                grown._lookups = (*lookups, frozenset((key,)))
                grown._newest = (*newest, at)
            else:
                grown._generations = (*(generations[i] for i in kept), (key,))
                grown._lookups = (*(lookups[i] for i in kept), frozenset((key,)))
                grown._newest = (*(newest[i] for i in kept), at)
        else:
            youngest = newest[-1]
            grown._generations = (*generations[:-1], (*generations[-1], key))
            grown._lookups = (*lookups[:-1], lookups[-1] | {key})
            grown._newest = (*newest[:-1], at if youngest is None or at > youngest else youngest)
        return grown

    @property
    def count(self) -> int:
        """How many keys were ever remembered (what places the generation boundaries)."""
        return self._count

    def generations(self) -> list[tuple[datetime | None, tuple[str, ...]]]:
        """The kept generations, oldest first, as `restored` takes them: what a snapshot stores."""
        return list(zip(self._newest, self._generations, strict=True))

    def __contains__(self, key: object) -> bool:
        return any(key in lookup for lookup in self._lookups)

    def __iter__(self) -> Iterator[str]:
        """The remembered keys, oldest first."""
        return chain.from_iterable(self._generations)

    def __len__(self) -> int:
        return sum(map(len, self._generations))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RecentKeys):
            return (
                self._count == other._count
                and self._generations == other._generations
                and self._newest == other._newest
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # None, not a method: compared, never hashed

    def __copy__(self) -> RecentKeys:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RecentKeys:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restored, (self._count, self.generations()))

    def __repr__(self) -> str:
        return f"RecentKeys.restored({self._count}, {self.generations()!r})"


def _restored(count: int, generations: list[tuple[datetime | None, tuple[str, ...]]]) -> RecentKeys:
    """For pickle: `RecentKeys.restored` by a module-level name."""
    return RecentKeys.restored(count, generations)
