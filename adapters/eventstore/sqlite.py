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
from typing import Any
from uuid import UUID

from dianabot.adapters.eventstore.chain import (
    HEAD_QUERY,
    Chainer,
    KeyFile,
    Row,
    SqlChainStore,
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
            c.execute(HEAD_QUERY.format(self.chain_table))
            links = self.chainer.links_after(c.fetchone(), positions, stored_events)
            c.executemany(f"INSERT INTO {self.chain_table} VALUES (?,?,?,?)", links)
        return positions

    def chain_store(self) -> SQLiteChainStore:
        return SQLiteChainStore(self)


class SQLiteChainStore(SqlChainStore):
    """The chain and the events it covers, read from a SQLite store (`chain.ChainStore`)."""

    kind = "sqlite"
    position = "rowid"
    mark = "?"

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

    def events(self, start: int, stop: int) -> list[Row]:
        rows = self._rows(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} WHERE rowid >= ? AND rowid < ? ORDER BY rowid",
            (start, stop),
        )
        to_bytes = _uuid_bytes if self.uuid_ids else _text_bytes
        return [Row(p, to_bytes(i), v, t, s) for p, i, v, t, s in rows]

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


def _uuid_bytes(stored: Any) -> Any:
    """A stored UUID id (32 hex digits) as its 16 bytes; anything else (an edited row) as it
    is, which no link matches (`chain.message`)."""
    try:
        return bytes.fromhex(stored)
    except (TypeError, ValueError):
        return stored


def _text_bytes(stored: Any) -> Any:
    return stored.encode() if isinstance(stored, str) else stored


class LeanSelectProcessRecorder(ChainedProcessRecorder):
    """The application's recorder (kept under its former name)."""


class DianaSQLiteFactory(DianaFactory, SQLiteFactory):
    """The library's SQLite factory with leaner reads and this package's ports (`factory`)."""

    aggregate_recorder_class = LeanSelectAggregateRecorder
    application_recorder_class = LeanSelectApplicationRecorder
    process_recorder_class = LeanSelectProcessRecorder

    store_kind = "sqlite"

    def process_recorder(self) -> Any:
        recorder: Any = super().process_recorder()
        recorder.chainer = self.chainer()
        return recorder
