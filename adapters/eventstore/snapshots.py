"""Pruning old snapshots: keep the latest few of each aggregate, delete the older rows.

The eventsourcing library keeps every snapshot it writes, and a snapshot holds the aggregate's
whole state (a Player's reacted posts), so a very active user leaves megabytes of them. They are
derived data: an aggregate loads from its latest snapshot and the events after it, and a
deleted snapshot only means a longer replay for an as-of load of an older version. Events are
never touched here: only the snapshot table (`stored_snapshots` on SQLite, `<app>_snapshots`
on PostgreSQL, the in-memory recorder's index on `memory://`).

How, per store (`prune(keep)`, the application's `jobs.SnapshotPruner` port):
- SQLite and PostgreSQL: find the rows beyond the latest `keep` of each aggregate with a window
  function over the table's primary key (a read, no write lock), then delete them by key in
  short transactions of at most `batch` rows, so event writers wait milliseconds at most. A
  snapshot written meanwhile is newer than the ones chosen, so it is never deleted.
- memory: drop the older versions from the recorder's index (and free their rows).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import AggregateRecorder, StoredEvent
from eventsourcing.popo import POPOAggregateRecorder
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

log = logging.getLogger(__name__)

DELETE_BATCH = 2_000
"""Snapshot rows deleted per transaction."""
MAX_ROWS = 100_000
"""Snapshot rows deleted by one `prune` at most (the next run goes on)."""

_EMPTY = StoredEvent(originator_id="", originator_version=0, topic="", state=b"")
"""What a pruned row of the in-memory recorder becomes (its state is freed)."""


class Pruner(Protocol):
    def prune(self, keep: int) -> int: ...


def snapshot_pruner(app: Any, *, batch: int = DELETE_BATCH) -> Pruner | None:
    """The pruner of `app`'s snapshot store (None when the application takes no snapshots)."""
    snapshots = getattr(app, "snapshots", None)
    if snapshots is None:
        return None
    recorder: AggregateRecorder = snapshots.recorder
    if isinstance(recorder, SQLiteAggregateRecorder):
        return SQLiteSnapshotPruner(recorder, batch)
    if isinstance(recorder, PostgresAggregateRecorder):
        return PostgresSnapshotPruner(recorder, batch)
    if isinstance(recorder, POPOAggregateRecorder):
        return MemorySnapshotPruner(recorder)
    raise TypeError(f"cannot prune snapshots of {type(recorder).__name__}")


def _checked(keep: int) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep at least one snapshot per aggregate, got {keep!r}")
    return keep


class SQLiteSnapshotPruner:
    def __init__(
        self, recorder: SQLiteAggregateRecorder, batch: int = DELETE_BATCH, max_rows: int = MAX_ROWS
    ) -> None:
        self.recorder = recorder
        self.batch = batch
        self.max_rows = max_rows
        table = recorder.events_table_name
        self._select = (
            "SELECT originator_id, originator_version FROM ("
            "SELECT originator_id, originator_version, row_number() OVER ("
            "PARTITION BY originator_id ORDER BY originator_version DESC) AS newer "
            f"FROM {table}) WHERE newer > ? LIMIT ?"
        )
        self._delete = f"DELETE FROM {table} WHERE originator_id = ? AND originator_version = ?"

    def prune(self, keep: int) -> int:
        keep = _checked(keep)
        datastore = self.recorder.datastore
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(self._select, (keep, self.max_rows))
            doomed = [tuple(row) for row in cursor.fetchall()]
        deleted = 0
        for start in range(0, len(doomed), self.batch):
            chunk = doomed[start : start + self.batch]
            with datastore.transaction(commit=True) as cursor:
                cursor.executemany(self._delete, chunk)
            deleted += len(chunk)
        return deleted


class PostgresSnapshotPruner:
    def __init__(
        self,
        recorder: PostgresAggregateRecorder,
        batch: int = DELETE_BATCH,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.recorder = recorder
        self.batch = batch
        self.max_rows = max_rows
        table = SQL("{}.{}").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        self._select = SQL(
            "SELECT originator_id, originator_version FROM ("
            "SELECT originator_id, originator_version, row_number() OVER ("
            "PARTITION BY originator_id ORDER BY originator_version DESC) AS newer "
            "FROM {table}) AS ranked WHERE newer > %s LIMIT %s"
        ).format(table=table)
        self._delete = SQL(
            "DELETE FROM {table} AS s USING unnest(%s::{id_type}[], %s::bigint[]) "
            "AS d(i, v) WHERE s.originator_id = d.i AND s.originator_version = d.v"
        ).format(table=table, id_type=Identifier(recorder.datastore.originator_id_type))

    def prune(self, keep: int) -> int:
        keep = _checked(keep)
        datastore = self.recorder.datastore
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(self._select, (keep, self.max_rows))
            doomed = [(row["originator_id"], row["originator_version"]) for row in cursor]
        deleted = 0
        for start in range(0, len(doomed), self.batch):
            chunk = doomed[start : start + self.batch]
            with datastore.transaction(commit=True) as cursor:
                cursor.execute(self._delete, ([i for i, _ in chunk], [v for _, v in chunk]))
            deleted += len(chunk)
        return deleted


class MemorySnapshotPruner:
    def __init__(self, recorder: POPOAggregateRecorder) -> None:
        self.recorder = recorder

    def prune(self, keep: int) -> int:
        keep = _checked(keep)
        recorder = self.recorder
        deleted = 0
        with recorder._database_lock:
            rows: list[StoredEvent] = recorder._stored_events
            for versions in recorder._stored_events_index.values():
                if len(versions) <= keep:
                    continue
                for version in sorted(versions)[:-keep]:
                    rows[versions.pop(version)] = _EMPTY
                    deleted += 1
        return deleted


def snapshot_versions(app: Any, aggregate_id: UUID) -> Sequence[int]:
    """The versions of `aggregate_id`'s stored snapshots, oldest first (tests, diagnostics)."""
    snapshots = getattr(app, "snapshots", None)
    if snapshots is None:
        return []
    recorder: AggregateRecorder = snapshots.recorder
    return [row.originator_version for row in recorder.select_events(aggregate_id)]
