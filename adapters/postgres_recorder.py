"""A leaner insert for the eventsourcing PostgreSQL recorder (APPLICATION_RECORDER_TOPIC).

The library sends a batch of events as one array of a composite type, which psycopg serialises in
Python, field by field (~100 µs per event here). This recorder sends the same rows as four arrays
of base types (uuid, bigint, text, bytea) that psycopg dumps in C, into the same table, under the
same table lock and NOTIFY, with the same RETURNING of notification ids: the stored log is
identical, only the wire format differs. It also sends the transaction in three round trips
(BEGIN + lock + NOTIFY as one simple query; the insert; COMMIT) where the library's pipeline
needs several syncs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier


class ArrayInsertPostgresRecorder(PostgresApplicationRecorder):
    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%s::{id_type}[], %s::bigint[], %s::text[], %s::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema=Identifier(self.datastore.schema),
            table=Identifier(self.events_table_name),
            id_type=Identifier(self.datastore.originator_id_type),
        )

        # Rendered to text once: psycopg would otherwise compose them on every insert.
        self._begin_and_lock = (
            SQL("BEGIN; {lock}; NOTIFY {channel}")
            .format(
                lock=SQL("; ").join(self.lock_table_statements),
                channel=Identifier(self.channel_name),
            )
            .as_string(None)
        )
        self._insert_sql = self.insert_events_statement.as_string(None)

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

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any
    ) -> None:
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self.insert_events_statement, _columns(stored_events), prepare=True)


def _columns(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    return (
        [event.originator_id for event in stored_events],
        [event.originator_version for event in stored_events],
        [event.topic for event in stored_events],
        [event.state for event in stored_events],
    )
