"""The application's event writer (`application.ports.EventWriter`) for every store.

What the library's `Application._record` and `EventStore.put` do, except that events a `Write`
carries already encoded (the commanding thread encodes them, off the group-commit writer's
thread) are not encoded again, and that one transaction holds several aggregates' events and an
optional tracking record. A store that can send a transaction and wait for it later (PostgreSQL:
`postgres.PipelinedWriter`) overrides `begin`; here it writes now.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dianabot.application.ports import AfterCommit, Write
from eventsourcing.persistence import (
    ApplicationRecorder,
    Mapper,
    Notification,
    PersistenceError,
    Recording,
    StoredEvent,
)


class EventWriter:
    """Writes one transaction with the recorder's `insert_events`, then tells `after_commit`."""

    def __init__(
        self, recorder: ApplicationRecorder, mapper: Mapper[UUID], after_commit: AfterCommit
    ) -> None:
        self.recorder = recorder
        self.mapper = mapper
        self.after_commit = after_commit

    def encode(self, write: Write) -> None:
        to_stored_event = self.mapper.to_stored_event
        write.stored_events = [to_stored_event(event) for event in write.events]

    def record(self, write: Write) -> list[Recording[UUID]]:
        stored = write.stored_events
        if stored is None:
            self.encode(write)
            stored = write.stored_events
            assert stored is not None
        positions = self.recorder.insert_events(stored, tracking=write.tracking)
        return self.recorded(write, stored, positions)

    def replace_broken_connections(self) -> None:
        """No pool here."""

    def recorded(
        self, write: Write, stored: Sequence[StoredEvent], positions: Sequence[int] | None
    ) -> list[Recording[UUID]]:
        """The recordings of events just inserted at `positions`, after `after_commit`."""
        if not stored:  # a tracking record alone (a subscriber's position moved)
            positions = []
        if positions is None or len(positions) != len(stored):
            raise PersistenceError("the recorder did not return a position for every event")
        recordings = [
            Recording(
                event,
                Notification(
                    originator_id=row.originator_id,
                    originator_version=row.originator_version,
                    topic=row.topic,
                    state=row.state,
                    id=position,
                ),
            )
            for event, row, position in zip(write.events, stored, positions, strict=True)
        ]
        self.after_commit(write)
        return recordings
