"""How aggregates load: the library's repository, replaying without its per-event check."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Repository


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's `project_aggregate` without its per-event `isinstance` check against a
    runtime protocol, a third of a snapshot load on Python 3.11 (docs/performance.md, item 13)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LeanRepository(Repository[UUID]):
    """The library's repository, replaying with `replay` unless told otherwise."""

    def get(self, aggregate_id: UUID, **kwargs: Any) -> Any:
        kwargs.setdefault("projector_func", replay)
        return super().get(aggregate_id, **kwargs)


def lean(repository: Repository[UUID]) -> Repository[UUID]:
    """`repository`, configured by the library from the environment as usual, as a
    `LeanRepository` (its class swapped: the library's construction is kept whole)."""
    repository.__class__ = LeanRepository
    return repository
