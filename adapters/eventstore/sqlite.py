"""The eventsourcing SQLite recorders with a leaner `select_events` (how aggregates load), plugged
in as a persistence factory
(`PERSISTENCE_MODULE=dianabot.adapters.eventstore.sqlite:DianaSQLiteFactory`). Same tables, same
rows.

Why: the library's select reads every row through `sqlite3.Row` by column name and parses the
originator id of every row back into a UUID, though every row of the answer has the id that was
asked for. Here a row is a plain tuple of the three columns that differ, and the id is
converted once (docs/performance.md, item 17).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from dianabot.adapters.eventstore.factory import DianaFactory
from dianabot.adapters.eventstore.selects import select_events_query
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteFactory,
    SQLiteProcessRecorder,
)


class LeanSelect(SQLiteAggregateRecorder):
    """`select_events` returning the library's rows, read as tuples (see module docstring)."""

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        stored_id = originator_id.hex if isinstance(originator_id, UUID) else originator_id
        statement, params = select_events_query(
            self.events_table_name, "?", stored_id, gt, lte, desc, limit
        )
        with self.datastore.transaction(commit=False) as cursor:
            # Plain tuples: the library's cursor wraps sqlite3's, whose connection makes Rows.
            cursor.sqlite_cursor.row_factory = None
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        if not rows:
            return []
        # Every row matched `originator_id = ?`: its stored id is `stored_id`, converted once.
        converted = self.convert_originator_id(stored_id)
        return [
            StoredEvent(
                originator_id=converted,
                originator_version=version,
                topic=topic,
                state=state,
            )
            for version, topic, state in rows
        ]


class LeanSelectAggregateRecorder(LeanSelect, SQLiteAggregateRecorder):
    """Snapshots."""


class LeanSelectApplicationRecorder(LeanSelect, SQLiteApplicationRecorder):
    """Events and the notification log."""


class LeanSelectProcessRecorder(LeanSelect, SQLiteProcessRecorder):
    """Events, the notification log and tracking: the application's recorder (see `factory`)."""


class DianaSQLiteFactory(DianaFactory, SQLiteFactory):
    """The library's SQLite factory with leaner reads and this package's ports (`factory`)."""

    aggregate_recorder_class = LeanSelectAggregateRecorder
    application_recorder_class = LeanSelectApplicationRecorder
    process_recorder_class = LeanSelectProcessRecorder
