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

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from dianabot.adapters.eventstore.chain import (
    KEY_ENV,
    Chainer,
    KeyFile,
    Link,
    Row,
    default_key_path,
    micros,
)
from dianabot.adapters.eventstore.factory import DianaFactory
from dianabot.adapters.eventstore.selects import select_events_query
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteCursor,
    SQLiteDatastore,
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


class ChainedProcessRecorder(LeanSelect, SQLiteProcessRecorder):
    """Events, the notification log and tracking, and the tamper-evident chain (`chain`), all in
    one transaction: the application's recorder (see `factory`)."""

    chainer: Chainer

    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.chainer = Chainer(KeyFile(None))  # the factory gives the key file

    @property
    def chain_table(self) -> str:
        return f"{self.events_table_name}_chain"

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {self.chain_table} (position INTEGER PRIMARY KEY, "
            "prev_position INTEGER NOT NULL, committed_at INTEGER NOT NULL, "
            "link BLOB NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {self.chain_table}_committed "
            f"ON {self.chain_table} (committed_at)",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._insert_events(c, stored_events, **kwargs)
        if stored_events and positions:
            # The INSERT above holds SQLite's write lock: the head read here is the chain's.
            c.execute(
                f"SELECT position, prev_position, committed_at, link FROM {self.chain_table} "
                "ORDER BY position DESC LIMIT 1"
            )
            found = c.fetchone()
            head = Link(*found) if found is not None else None
            links = self.chainer.links(head, positions, stored_events)
            c.executemany(f"INSERT INTO {self.chain_table} VALUES (?,?,?,?)", links)
        return positions

    def chain_store(self) -> SQLiteChainStore:
        return SQLiteChainStore(self)


class SQLiteChainStore:
    """The chain and the events it covers, read from a SQLite store (`chain.ChainStore`)."""

    kind = "sqlite"

    def __init__(self, recorder: ChainedProcessRecorder) -> None:
        self.recorder = recorder
        self.events_table = recorder.events_table_name
        self.chain_table = recorder.chain_table
        self.uuid_ids = recorder.datastore.originator_id_type == "uuid"

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.sqlite_cursor.row_factory = None
            try:
                cursor.execute(statement, params)
            except Exception as error:  # a store from before the chain has no chain table
                if "no such table" in str(error):
                    return []
                raise
            return list(cursor.fetchall())

    def _link(self, statement: str, params: Sequence[Any] = ()) -> Link | None:
        rows = self._rows(statement, params)
        return Link(*rows[0]) if rows else None

    def event_head(self) -> int:
        rows = self._rows(f"SELECT MAX(rowid) FROM {self.events_table}")
        return int(rows[0][0] or 0) if rows else 0

    def chain_head(self) -> Link | None:
        return self._link(f"SELECT * FROM {self.chain_table} ORDER BY position DESC LIMIT 1")

    def chain_first(self) -> Link | None:
        return self._link(f"SELECT * FROM {self.chain_table} ORDER BY position LIMIT 1")

    def link_at(self, position: int) -> Link | None:
        return self._link(f"SELECT * FROM {self.chain_table} WHERE position = ?", (position,))

    def link_before(self, position: int) -> Link | None:
        return self._link(
            f"SELECT * FROM {self.chain_table} WHERE position < ? ORDER BY position DESC LIMIT 1",
            (position,),
        )

    def count_events_before(self, position: int) -> int:
        rows = self._rows(f"SELECT COUNT(*) FROM {self.events_table} WHERE rowid < ?", (position,))
        return int(rows[0][0]) if rows else 0

    def events(self, start: int, stop: int) -> list[Row]:
        rows = self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            (start, stop),
        )
        if self.uuid_ids:
            return [Row(p, bytes.fromhex(i), v, t, s) for p, i, v, t, s in rows]
        return [Row(p, str(i).encode(), v, t, s) for p, i, v, t, s in rows]

    def links(self, start: int, stop: int) -> list[Link]:
        rows = self._rows(
            f"SELECT * FROM {self.chain_table} WHERE position >= ? AND position < ? "
            "ORDER BY position",
            (start, stop),
        )
        return [Link(*row) for row in rows]

    def last_position_committed_by(self, when: datetime) -> int:
        rows = self._rows(
            f"SELECT MAX(position) FROM {self.chain_table} WHERE committed_at <= ?",
            (micros(when),),
        )
        return int(rows[0][0] or 0) if rows else 0

    def snapshot_rows(self) -> Iterator[StoredEvent]:
        last: tuple[str, int] = ("", 0)
        while True:
            rows = self._rows(
                "SELECT originator_id, originator_version, topic, state FROM stored_snapshots "
                "WHERE (originator_id, originator_version) > (?, ?) "
                "ORDER BY originator_id, originator_version LIMIT 500",
                last,
            )
            if not rows:
                return
            for i, v, t, s in rows:
                yield StoredEvent(self.recorder.convert_originator_id(i), v, t, s)
            last = (rows[-1][0], rows[-1][1])


class LeanSelectProcessRecorder(ChainedProcessRecorder):
    """The application's recorder (kept under its former name)."""


class DianaSQLiteFactory(DianaFactory, SQLiteFactory):
    """The library's SQLite factory with leaner reads and this package's ports (`factory`)."""

    aggregate_recorder_class = LeanSelectAggregateRecorder
    application_recorder_class = LeanSelectApplicationRecorder
    process_recorder_class = LeanSelectProcessRecorder

    def process_recorder(self) -> Any:
        recorder: Any = super().process_recorder()
        path = self.env.get(KEY_ENV) or default_key_path("sqlite", self.env.get(self.SQLITE_DBNAME))
        recorder.chainer = Chainer(KeyFile(Path(path) if path else None))
        return recorder
