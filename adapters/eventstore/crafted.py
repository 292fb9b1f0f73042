"""Writing events straight into the event store, encoded by the application's own mapper.

Not the application's writer (`writer.EventWriter`): it records no command and takes no lock.
Two users, neither of them the bot: benchmarks seeding a million events (in large batches,
without running a command per event), and reconciliation tests that need a history the domain
would refuse to write (a spend below zero, an award of a badge nobody defined). Events written
here are ordinary events: same classes, same topics, same encoding, same notification log.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

CRAFTED_CAUSATION = "crafted"
CRAFTED_ACTOR = "system:crafted"


class CraftedWriter:
    """Appends events to streams, numbering versions after what the store already holds."""

    def __init__(self, app: Application[Any], *, batch_size: int = 10_000) -> None:
        self.app = app
        self.batch_size = batch_size
        self.versions: dict[UUID, int] = {}
        self.pending: list[StoredEvent] = []
        self.written = 0
        self._topics: dict[type[Any], str | None] = {}

    def append(
        self,
        event_class: type[Any],
        originator_id: UUID,
        timestamp: datetime,
        *,
        causation: str = CRAFTED_CAUSATION,
        actor: str = CRAFTED_ACTOR,
        new_stream: bool = False,
        **fields: Any,
    ) -> Any:
        """Encode one event of `event_class` at the next version of its stream and queue it.

        `new_stream=True` skips asking the store for the stream's last version (bulk seeding).
        """
        version = self.versions.get(originator_id)
        if version is None:
            version = 0 if new_stream else self._stored_version(originator_id)
        version += 1
        self.versions[originator_id] = version
        topic = self._aggregate_topic(event_class)
        if topic is not None:
            fields["originator_topic"] = topic
        event = event_class(
            originator_id=originator_id,
            originator_version=version,
            timestamp=timestamp,
            causation=causation,
            actor=actor,
            **fields,
        )
        self.pending.append(self.app.mapper.to_stored_event(event))
        if len(self.pending) >= self.batch_size:
            self.flush()
        return event

    def flush(self) -> int:
        """Write the queued events in one insert; returns how many."""
        if not self.pending:
            return 0
        batch, self.pending = self.pending, []
        self.app.recorder.insert_events(batch)
        self.written += len(batch)
        cache = getattr(self.app.repository, "cache", None)
        if cache is not None:  # cached aggregates of these streams are now behind the store
            for originator_id in {stored.originator_id for stored in batch}:
                with contextlib.suppress(KeyError):
                    cache.get(originator_id, evict=True)
        return len(batch)

    def _stored_version(self, originator_id: UUID) -> int:
        last = self.app.recorder.select_events(originator_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def _aggregate_topic(self, event_class: type[Any]) -> str | None:
        """Creation events carry their aggregate's topic; others carry none."""
        if event_class not in self._topics:
            topic = None
            if "originator_topic" in getattr(event_class, "__dataclass_fields__", {}):
                owner = event_class.__qualname__.rpartition(".")[0]
                topic = get_topic(resolve_topic(f"{event_class.__module__}:{owner}"))
            self._topics[event_class] = topic
        return self._topics[event_class]
