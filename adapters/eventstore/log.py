"""The notification log as the read side reads it (`projections.ports.EventLog`): fast pages,
each event decoded once, a few streams in log order, and a waker.

Why not the library's subscription or `ProjectionRunner`: those hand one event at a time to one
projection, which commits per event (~1,600 events/s here). Reading pages of notifications,
skipping events no projector wants by their topic (without decoding them), and decoding the rest
once for every projector in the pass is what makes catch-up and rebuilds cheap.

One class per store, built by that store's persistence factory (`DianaFactory.event_log`):
- `RecorderEventLog` (memory, and the fallback): the recorder's own `select_notifications`;
- `SQLiteEventLog`: the same statement as the recorder's, rows read as named tuples;
- `PostgresEventLog`: the same, in binary, with the next page read while this one is decoded.
`event_log(app)` picks the application's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, cast
from uuid import UUID

import psycopg
from dianabot.adapters.eventstore.wakers import ListenWaker, PollingWaker, SignalWaker
from dianabot.projections.ports import EventLog, LoggedRow, StoredRow, Waker
from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import resolve_topic
from psycopg.sql import SQL, Identifier


class Logged(NamedTuple):
    """One notification as read from the log: what the mapper decodes, and its position."""

    id: int
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes


def _logged_rows(cursor: Any) -> Any:
    return Logged._make


Page = Callable[[int, int, int], Sequence[LoggedRow]]


class RecorderEventLog:
    """The log of any application recorder, read through its public methods."""

    read_ahead = False
    """Fetch the next page in a thread while the caller decodes this one (PostgreSQL)."""

    def __init__(self, recorder: ApplicationRecorder, mapper: Mapper[UUID]) -> None:
        self.recorder = recorder
        self.mapper = mapper
        # The mapper reads only the four attributes every `StoredRow` has; bound once, called
        # once per decoded event (no wrapper in the fold's inner loop).
        self.decode = cast(Callable[[StoredRow], Any], mapper.to_domain_event)
        self._names: dict[str, str] = {}

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    def pages(self, after: int, upto: int, page_size: int) -> Iterator[Sequence[LoggedRow]]:
        select = self._page
        if not self.read_ahead:
            start = after + 1
            while start <= upto:
                page = select(start, upto, page_size)
                if not page:
                    return
                yield page
                if len(page) < page_size:
                    return
                start = page[-1].id + 1
            return
        # Ask for the next page while the caller decodes this one (the driver waits for the
        # server without the GIL, so reading and decoding overlap).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-read") as pool:
            pending = pool.submit(select, after + 1, upto, page_size) if after < upto else None
            while pending is not None:
                page = pending.result()
                if not page:
                    return
                more = len(page) == page_size and page[-1].id < upto
                pending = pool.submit(select, page[-1].id + 1, upto, page_size) if more else None
                yield page

    def _page(self, start: int, upto: int, limit: int) -> Sequence[LoggedRow]:
        """One page: positions `start`..`upto`, at most `limit` of them, in order."""
        return self.recorder.select_notifications(start, limit, stop=upto)

    def streams(self, originator_ids: Iterable[UUID], upto: int) -> list[LoggedRow]:
        """A per-user check replays only that user's streams, but in the order the whole log
        has them (a VIP grant after a gate hit is a conversion; before it, not), and only up to
        the position its live rows are at. `select_events` gives neither positions nor a
        cross-stream order: here, the log is scanned (subclasses ask the table directly)."""
        wanted = set(originator_ids)
        found: list[LoggedRow] = []
        for page in self.pages(0, upto, 1000):
            found.extend(n for n in page if n.originator_id in wanted)
        return found

    def stream(self, originator_id: UUID) -> Sequence[StoredRow]:
        return self.recorder.select_events(originator_id)

    def stream_head(self, originator_id: UUID) -> int:
        last = self.recorder.select_events(originator_id, desc=True, limit=1)
        return last[0].originator_version if last else 0

    def name_of(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            try:
                name = resolve_topic(topic).__name__
            except Exception:  # an unknown topic fails at decoding, for the projectors that care
                name = topic.rpartition(".")[2].rpartition(":")[2]
            self._names[topic] = name
        return name

    def waker(self) -> Waker:
        return PollingWaker()


class MemoryEventLog(RecorderEventLog):
    """The in-memory store: its recorder signals inserts to registered events."""

    recorder: POPOApplicationRecorder

    def waker(self) -> Waker:
        return SignalWaker(self.recorder)


class SQLiteEventLog(RecorderEventLog):
    """SQLite: pages and streams as plain rows from the events table (see `_page`)."""

    recorder: SQLiteApplicationRecorder

    def __init__(self, recorder: SQLiteApplicationRecorder, mapper: Mapper[UUID]) -> None:
        super().__init__(recorder, mapper)
        self._pages = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {recorder.events_table_name} WHERE rowid >= ? AND rowid <= ? "
            "ORDER BY rowid LIMIT ?"
        )

    def _page(self, start: int, upto: int, limit: int) -> Sequence[LoggedRow]:
        """`select_notifications` builds a dict per row and then a frozen dataclass per event,
        about half of what reading the log costs; here rows are named tuples (the mapper needs
        only the attributes). Same statement, same order, same gaps."""
        if self.recorder.datastore.originator_id_type != "uuid":
            return super()._page(start, upto, limit)
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(self._pages, (start, upto, limit))
            return [
                Logged(row[0], UUID(row[1]), row[2], row[3], row[4]) for row in cursor.fetchall()
            ]

    def streams(self, originator_ids: Iterable[UUID], upto: int) -> list[LoggedRow]:
        recorder = self.recorder
        ids = sorted(set(originator_ids), key=str)
        found: list[LoggedRow] = []
        table = recorder.events_table_name
        for start in range(0, len(ids), 500):
            chunk = [i.hex for i in ids[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            statement = (
                f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
                f"WHERE originator_id IN ({marks}) AND rowid <= ?"
            )
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [*chunk, upto])
                found.extend(
                    Notification(
                        id=row["rowid"],
                        originator_id=recorder.convert_originator_id(row["originator_id"]),
                        originator_version=row["originator_version"],
                        topic=row["topic"],
                        state=row["state"],
                    )
                    for row in cursor.fetchall()
                )
        found.sort(key=lambda n: n.id)
        return found


class PostgresEventLog(RecorderEventLog):
    """PostgreSQL: pages as named tuples in binary, read ahead; streams in one query; LISTEN."""

    recorder: PostgresApplicationRecorder
    read_ahead = True

    def __init__(self, recorder: PostgresApplicationRecorder, mapper: Mapper[UUID]) -> None:
        super().__init__(recorder, mapper)
        table = {
            "schema": Identifier(recorder.datastore.schema),
            "table": Identifier(recorder.events_table_name),
        }
        self._pages = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE notification_id >= %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(**table)
        self._streams = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{table} WHERE originator_id = ANY(%s) AND notification_id <= %s "
            "ORDER BY notification_id"
        ).format(**table)

    def _page(self, start: int, upto: int, limit: int) -> Sequence[LoggedRow]:
        """Same statement as `select_notifications`, rows as named tuples (see SQLite's)."""
        with (
            self.recorder.datastore.get_connection() as conn,
            conn.cursor(row_factory=_logged_rows, binary=True) as cursor,
        ):
            cursor.execute(self._pages, (start, upto, limit), prepare=True)
            return cast(list[LoggedRow], cursor.fetchall())

    def streams(self, originator_ids: Iterable[UUID], upto: int) -> list[LoggedRow]:
        ids = sorted(set(originator_ids), key=str)
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(self._streams, (ids, upto))
            return [
                Notification(
                    id=row["notification_id"],
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in cursor.fetchall()
            ]

    def waker(self) -> Waker:
        return ListenWaker(self.listen_connection, self.recorder.channel_name)

    def listen_connection(self) -> psycopg.Connection[Any]:
        """A connection of its own (not one of the pool's, which LISTEN would hold forever),
        with the pool's connection settings."""
        pool = self.recorder.datastore.pool
        kwargs = pool.kwargs() if callable(pool.kwargs) else pool.kwargs or {}
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        settings = {k: v for k, v in kwargs.items() if k != "row_factory"}
        settings.setdefault("connect_timeout", 5)  # the pool's own, where it sets one
        return psycopg.connect(conninfo, autocommit=True, **settings)


def event_log(app: Application[Any]) -> EventLog:
    """The event log of an application, by its recorder's store."""
    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        return PostgresEventLog(recorder, app.mapper)
    if isinstance(recorder, SQLiteApplicationRecorder):
        return SQLiteEventLog(recorder, app.mapper)
    if isinstance(recorder, POPOApplicationRecorder):
        return MemoryEventLog(recorder, app.mapper)
    return RecorderEventLog(recorder, app.mapper)
