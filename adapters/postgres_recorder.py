"""Leaner inserts for the eventsourcing PostgreSQL recorders, plugged in as a persistence factory
(`PERSISTENCE_MODULE=adapters.postgres_recorder:DianaPostgresFactory`).

The library sends a batch of events as one array of a composite type, which psycopg serialises in
Python, field by field (~30 µs per event here). These recorders send the same rows as four arrays
of base types (uuid, bigint, text, bytea) that psycopg dumps in C, into the same tables. The
application recorder keeps the same table lock, NOTIFY and RETURNING of notification ids, so the
stored log is identical; it also sends the transaction in three round trips (BEGIN + lock +
NOTIFY as one simple query, the insert, COMMIT) where the library's pipeline needs several syncs.
The snapshot recorder gets the same array insert.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

INSERT_FROM_ARRAYS = (
    "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
    "SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[])"
)


def _insert_statement(recorder: PostgresAggregateRecorder, returning: str = "") -> Composed:
    return SQL(INSERT_FROM_ARRAYS + returning).format(
        schema=Identifier(recorder.datastore.schema),
        table=Identifier(recorder.events_table_name),
        id_type=Identifier(recorder.datastore.originator_id_type),
    )


def _columns(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    return (
        [event.originator_id for event in stored_events],
        [event.originator_version for event in stored_events],
        [event.topic for event in stored_events],
        [event.state for event in stored_events],
    )


class ArrayInsertAggregateRecorder(PostgresAggregateRecorder):
    """Snapshots: the same table, rows sent as typed arrays."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = _insert_statement(self)
        self._insert_sql = self.insert_events_statement.as_string(None)

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        curs.execute(self._insert_sql, _columns(stored_events), prepare=True)


class ArrayInsertPostgresRecorder(PostgresApplicationRecorder):
    """The events table and its notification log: same lock, NOTIFY and positions."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = _insert_statement(self, " RETURNING notification_id")
        # Rendered to text once: psycopg would otherwise compose them on every insert.
        self._insert_sql = self.insert_events_statement.as_string(None)
        self._begin_and_lock = (
            SQL("BEGIN; {lock}; NOTIFY {channel}")
            .format(
                lock=SQL("; ").join(self.lock_table_statements),
                channel=Identifier(self.channel_name),
            )
            .as_string(None)
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn:
            try:
                with conn.cursor() as curs:
                    curs.execute(self._begin_and_lock)
                    curs.execute(self._insert_sql, _columns(stored_events), prepare=True)
                    notification_ids = [row["notification_id"] for row in curs.fetchall()]
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
        return notification_ids


class DianaPostgresFactory(PostgresFactory):
    aggregate_recorder_class = ArrayInsertAggregateRecorder
    application_recorder_class = ArrayInsertPostgresRecorder
