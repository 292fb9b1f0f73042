"""Leaner inserts for the eventsourcing PostgreSQL recorders, plugged in as a persistence factory
(`PERSISTENCE_MODULE=dianabot.adapters.eventstore.postgres:DianaPostgresFactory`). Same tables,
same table lock, NOTIFY and RETURNING of notification ids as the library, so the stored log is
identical and the library's readers work unchanged.

Why: the library sends a batch as one array of a composite type, which psycopg serialises in
Python field by field, in a pipeline with several syncs (docs/performance.md, items 5 and
10). Each database round trip also costs a writer thread the GIL twice, and it queues for it
behind every busy thread of the process. So a transaction is sent as ONE simple query:

    BEGIN; LOCK TABLE ... IN EXCLUSIVE MODE; NOTIFY ...;
    INSERT INTO ... SELECT i, v, t, decode(h, 'hex')
        FROM unnest('{<uuids>}'::uuid[], '{<versions>}'::bigint[], '{<topics>}'::text[],
                    '{<hex states>}'::text[]) AS r(i, v, t, h)
    RETURNING notification_id;
    COMMIT

Injection-safe by construction, not by escaping: the literals only ever hold UUIDs rendered by
Python, integers, topics that match `[A-Za-z0-9_.:]+` and hexadecimal digits, none of which can
close a quote or an array element. A batch holding anything else (a text originator id, an
unusual topic) takes the parameterised path: typed arrays in psycopg's binary format (a fraction
of the text format's client CPU: item 8), BEGIN + lock + NOTIFY, insert, COMMIT.

Snapshots are few but big (a Player's reacted posts): for them the literal is slower (hex
doubles the bytes and the server parses it), so they always take the binary-array insert, in
autocommit.

Reads (`select_events`, how an aggregate is loaded) ask for results in binary: in text format a
`bytea` column arrives as hex, twice its size, and psycopg decodes it in Python (a big Player
snapshot fetches in little more than half the time in binary: item 14).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg
from dianabot.adapters.eventstore.chain import (
    HEAD_QUERY,
    Chainer,
    KeyFile,
    Link,
    Row,
    SqlChainStore,
    id_bytes,
    values_literal,
)
from dianabot.adapters.eventstore.factory import DianaFactory, TrackingPositions
from dianabot.adapters.eventstore.selects import select_events_query
from dianabot.adapters.eventstore.writer import EventWriter
from dianabot.application.ports import SubscriberPositions
from eventsourcing.persistence import (
    ApplicationRecorder,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import (
    ConnectionPool,
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
    PostgresProcessRecorder,
    PostgresTrackingRecorder,
)
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier

COLUMNS = "(originator_id, originator_version, topic, state)"
INSERT_FROM_ARRAYS = (
    "INSERT INTO {schema}.{table} " + COLUMNS + " "
    "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[])"
)
_PLAIN_TOPIC = re.compile(r"[A-Za-z0-9_.:]+")

log = logging.getLogger(__name__)

POOL_CONNECT_TIMEOUT_SECONDS = 2
"""The connect timeout of the pool's own connections (libpq's `connect_timeout`)."""


def _table(recorder: PostgresAggregateRecorder) -> str:
    return (
        SQL("{}.{}")
        .format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        .as_string(None)
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


def literal_arrays(
    stored_events: Sequence[StoredEvent], id_type: str
) -> tuple[str, str, str, str] | None:
    """The columns as the bodies of four array literals (ids, versions, topics, hex states;
    see module docstring), or None when a value is not one of the plain kinds that can be
    written into a literal safely."""
    if id_type != "uuid":
        return None
    ids, versions, topics, states = [], [], [], []
    for event in stored_events:
        version = event.originator_version
        if (
            type(event.originator_id) is not UUID
            or type(version) is not int
            or not _PLAIN_TOPIC.fullmatch(event.topic)
        ):
            return None
        ids.append(event.originator_id.hex)  # PostgreSQL reads a uuid without hyphens too
        versions.append(str(version))
        topics.append(event.topic)
        states.append(event.state.hex())
    return ",".join(ids), ",".join(versions), ",".join(topics), ",".join(states)


def select_arrays(arrays: tuple[str, str, str, str]) -> str:
    """`literal_arrays` as a SELECT of the rows."""
    ids, versions, topics, states = arrays
    return (
        "SELECT i, v, t, decode(h, 'hex') FROM unnest("
        f"'{{{ids}}}'::uuid[], '{{{versions}}}'::bigint[], "
        f"'{{{topics}}}'::text[], '{{{states}}}'::text[]) AS r(i, v, t, h)"
    )


def literal_rows(stored_events: Sequence[StoredEvent], id_type: str) -> str | None:
    """The rows as a SELECT over array literals (see module docstring), or None when a value
    is not one of the plain kinds that can be written into a literal safely."""
    arrays = literal_arrays(stored_events, id_type)
    return select_arrays(arrays) if arrays is not None else None


class BinarySelect(PostgresAggregateRecorder):
    """`select_events` with results in binary format (see module docstring), same rows."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        self._table = _table(self)  # "schema"."table", rendered once for every statement

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        statement, params = select_events_query(
            self._table, "%s", originator_id, gt, lte, desc, limit
        )
        if self.datastore.originator_id_type == "uuid" and not isinstance(originator_id, UUID):
            originator_id = UUID(str(originator_id))  # as the column would return it
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
                for version, topic, state in curs.fetchall()
            ]


class ArrayInsertAggregateRecorder(BinarySelect, PostgresAggregateRecorder):
    """Snapshots: the same table, rows sent as typed binary arrays."""

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

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's, without its retries (ten, 0.2 s apart, each waiting out the pool's
        timeout while the server is down): a snapshot is an optimisation, and one written
        after a command's commit held that command's caller for half a minute in an outage."""
        insert: Any = PostgresAggregateRecorder.insert_events
        result: Sequence[int] | None = insert.__wrapped__(self, stored_events, **kwargs)
        return result


class ArrayInsertPostgresRecorder(BinarySelect, PostgresApplicationRecorder):
    """The events table and its notification log: same lock, NOTIFY and positions."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        **kwargs: Any,
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name, **kwargs)
        # NOTIFY channels are per database, not per schema: the library's (the table's name)
        # would wake every application of the database on each other's inserts.
        self.channel_name = f"{datastore.schema or 'public'}_{self.channel_name}"
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
        self._results_before_insert = len(self.lock_table_statements) + 2  # BEGIN, locks, NOTIFY
        # The tamper-evident chain (`chain`), written in the events' transaction.
        self.chain_table = f"{self.events_table_name}_chain"
        self._chain = (
            SQL("{}.{}")
            .format(Identifier(self.datastore.schema), Identifier(self.chain_table))
            .as_string(None)
        )
        self._chain_head = HEAD_QUERY.format(self._chain)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {schema}.{table} (position bigint PRIMARY KEY, "
                    "prev_position bigint NOT NULL, committed_at bigint NOT NULL, "
                    "link bytea NOT NULL)"
                ).format(
                    schema=Identifier(self.datastore.schema), table=Identifier(self.chain_table)
                ),
                SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (committed_at)").format(
                    index=Identifier(f"{self.chain_table}_committed_idx"),
                    schema=Identifier(self.datastore.schema),
                    table=Identifier(self.chain_table),
                ),
            ]
        )
        self.chainer = Chainer(KeyFile(None))  # the factory gives the key file
        self._chain_cache: Link | None = None
        """The chain's head as this process last wrote it (see `_predicted`)."""
        # The one-round-trip write (`_predicted`) as a function: PL/pgSQL keeps its plan for
        # the session, which no DEALLOCATE ALL drops (psycopg sends one on every ROLLBACK).
        self._chained = (
            SQL("{}.{}")
            .format(
                Identifier(self.datastore.schema), Identifier(f"{self.events_table_name}_chained")
            )
            .as_string(None)
        )
        function = (
            f"CREATE OR REPLACE FUNCTION {self._chained}(uuid[], bigint[], text[], text[], "
            "bigint[], bigint[], bigint, text[], bigint) RETURNS void LANGUAGE plpgsql AS $$ "
            f"BEGIN WITH ins AS (INSERT INTO {self._table} {COLUMNS} "
            "SELECT i, v, t, decode(h, 'hex') FROM unnest($1, $2, $3, $4) AS r(i, v, t, h) "
            f"RETURNING notification_id) INSERT INTO {self._chain} "
            "SELECT p, q, $7, decode(l, 'hex') FROM unnest($5, $6, $8) AS x(p, q, l) "
            "WHERE 1 / (CASE WHEN (SELECT array_agg(notification_id ORDER BY "
            f"notification_id) FROM ins) = $5 AND (SELECT max(position) FROM {self._chain}) "
            "= $9 THEN 1 ELSE 0 END) = 1; END $$"
        )
        self.sql_create_statements.append(Composed([SQL(function)]))

    def _one_round_trip(self, rows: str) -> str:
        return (
            f"{self._begin_and_lock}; INSERT INTO {self._table} {COLUMNS} "
            f"{rows} RETURNING notification_id; {self._chain_head}"
        )

    def _chain_and_commit(
        self, curs: Cursor[DictRow], positions: list[int], stored_events: Sequence[StoredEvent]
    ) -> None:
        """Read the chain's head (the table lock is held), then insert the links and commit
        in one round trip."""
        found = curs.fetchone()
        head = tuple(found.values()) if found is not None else None
        links = self.chainer.links_after(head, positions, stored_events)
        curs.execute(f"INSERT INTO {self._chain} VALUES {values_literal(links)}; COMMIT")
        self._chain_cache = links[-1] if links else self._chain_cache

    def _predicted(
        self, arrays: tuple[str, str, str, str], head: Link, stored_events: Sequence[StoredEvent]
    ) -> tuple[str, Link]:
        """The events and their links in one round trip, the links computed beforehand from
        the head this process last wrote, for the positions that follow it; and the last link.

        The statement calls the function `_chained` with literal arguments in the simple
        protocol: no parse or plan of the insert per write, and every microsecond the
        writer waits for the server costs it CPU too
        (docs/performance.md, "The chained write in one pipeline"). It fails (division by
        zero, so the whole transaction rolls back) unless the chain's head is still that one
        and the events got exactly those positions. The arguments hold only integers and
        hexadecimal digits besides `literal_arrays`."""
        committed, digests = self.chainer.following(head, stored_events)
        ids, versions, topics, states = arrays
        start = head.position + 1
        end = start + len(digests)
        positions = ",".join(map(str, range(start, end)))
        previous = ",".join(map(str, range(start - 1, end - 1)))
        hexes = ",".join([digest.hex() for digest in digests])
        statement = (
            f"{self._begin_and_lock}; SELECT {self._chained}('{{{ids}}}', "
            f"'{{{versions}}}', '{{{topics}}}', '{{{states}}}', '{{{positions}}}', "
            f"'{{{previous}}}', {int(committed)}, '{{{hexes}}}', {int(head.position)}); COMMIT"
        )
        return statement, Link(end - 1, end - 2, committed, digests[-1])

    def _write_predicted(self, conn: Connection[Any], statement: str) -> bool:
        """Run `_predicted`'s statement: True when it committed, False when it rolled back
        (the head or positions were not the predicted ones, or the function is missing: a
        store created before it, opened without creating tables)."""
        try:
            conn.execute(statement)
            return True
        except (psycopg.errors.DivisionByZero, psycopg.errors.UndefinedFunction):
            conn.execute("ROLLBACK")
            return False
        except BaseException:
            with contextlib.suppress(Exception):
                conn.execute("ROLLBACK")
            raise

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        arrays = literal_arrays(stored_events, self.datastore.originator_id_type)
        with self.datastore.get_connection() as conn:
            head = self._chain_cache
            if arrays is not None and head is not None:
                # Usually this process wrote the last transaction: one round trip.
                self._chain_cache = None
                statement, last = self._predicted(arrays, head, stored_events)
                if self._write_predicted(conn, statement):
                    self._chain_cache = last
                    return list(range(head.position + 1, last.position + 1))
            try:
                with conn.cursor() as curs:
                    if arrays is not None:  # the events and the chain's head in one round trip
                        curs.execute(self._one_round_trip(select_arrays(arrays)))
                        for _ in range(self._results_before_insert):
                            curs.nextset()
                        notification_ids = [row["notification_id"] for row in curs.fetchall()]
                        curs.nextset()
                    else:
                        curs.execute(self._begin_and_lock)
                        curs.execute(self._insert_sql, _columns(stored_events), prepare=True)
                        notification_ids = [row["notification_id"] for row in curs.fetchall()]
                        curs.execute(self._chain_head)
                    self._chain_and_commit(curs, notification_ids, stored_events)
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
        return notification_ids

    def chain_store(self) -> PostgresChainStore:
        return PostgresChainStore(self)


class ArrayInsertProcessRecorder(ArrayInsertPostgresRecorder, PostgresProcessRecorder):
    """The application's recorder (see `factory`): the events as above and, when a transaction
    carries one, a tracking record in the same transaction (the parameterised path: BEGIN, lock
    and NOTIFY, the tracking record, the events, COMMIT); a tracking record alone is one
    INSERT."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is None:
            return super().insert_events(stored_events)
        if not stored_events:
            # A position alone orders no events (no table lock, which would hold up every
            # writer) and gives readers nothing to read (no NOTIFY, which would wake them all):
            # one statement, its own transaction (the connection is in autocommit).
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                self._insert_tracking(curs, tracking)
            return []
        with self.datastore.get_connection() as conn:
            try:
                with conn.cursor() as curs:
                    curs.execute(self._begin_and_lock)
                    self._insert_tracking(curs, tracking)
                    curs.execute(self._insert_sql, _columns(stored_events), prepare=True)
                    notification_ids = [row["notification_id"] for row in curs.fetchall()]
                    curs.execute(self._chain_head)
                    self._chain_and_commit(curs, notification_ids, stored_events)
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK")
                raise
        return notification_ids


def _paired_position(row: tuple[Any, ...]) -> int:
    position: int = row[0] if row[0] is not None else row[1]
    return position


class PostgresChainStore(SqlChainStore):
    """The chain and the events it covers, read from a PostgreSQL store (`chain.ChainStore`):
    results in binary, rows as tuples."""

    kind = "postgres"
    position = "notification_id"
    mark = "%s"

    def __init__(self, recorder: ArrayInsertPostgresRecorder) -> None:
        self.recorder = recorder
        self.events_table = recorder._table
        self.chain_table = recorder._chain
        self.snapshots_table = (
            SQL("{}.{}")
            .format(
                Identifier(recorder.datastore.schema),
                Identifier(recorder.events_table_name.replace("_events", "_snapshots")),
            )
            .as_string(None)
        )
        self.uuid_ids = recorder.datastore.originator_id_type == "uuid"
        if not self.uuid_ids:  # the generic walk (`chain.Verifier._check_page`)
            self.verify_rows = None  # type: ignore[assignment]
        self._verify_rows = (
            "SELECT e.notification_id, c.position, c.prev_position, c.link, "
            "int8send(c.prev_position) || int8send(c.position) || int8send(c.committed_at) "
            "|| int8send(e.originator_version) || int4send(16) "
            "|| int4send(octet_length(convert_to(e.topic, 'UTF8'))) || uuid_send(e.originator_id) "
            "|| convert_to(e.topic, 'UTF8') || e.state "
            f"FROM (SELECT * FROM {self.events_table} WHERE notification_id >= %s "
            "AND notification_id < %s) AS e "
            f"FULL JOIN (SELECT * FROM {self.chain_table} WHERE position >= %s "
            "AND position < %s) AS c ON c.position = e.notification_id"
        )  # no ORDER BY: sorting the wide rows spills to disk; sorted by the client instead
        self._events_by_bytes = (
            "SELECT notification_id, uuid_send(originator_id), originator_version, topic, state "
            f"FROM {self.events_table} WHERE notification_id >= %s AND notification_id < %s "
            "ORDER BY notification_id"
        )

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with (
            self.recorder.datastore.get_connection() as conn,
            conn.cursor(binary=True, row_factory=tuple_row) as curs,
        ):
            try:
                curs.execute(statement, params)
            except psycopg.errors.UndefinedTable:  # a store from before the chain
                conn.rollback()
                return []
            return curs.fetchall()

    def events(self, start: int, stop: int) -> list[Row]:
        if self.uuid_ids:  # the id's 16 bytes straight from the server: no UUID objects
            rows = self._rows(self._events_by_bytes, (start, stop))
            return [Row(*row) for row in rows]
        rows = self._rows(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {self.events_table} WHERE notification_id >= %s AND notification_id < %s "
            "ORDER BY notification_id",
            (start, stop),
        )
        return [Row(p, id_bytes(i), v, t, bytes(s)) for p, i, v, t, s in rows]

    def verify_rows(self, start: int, stop: int) -> list[tuple[Any, ...]]:
        """For `chain.Verifier._fast`: events and links of positions `start`..`stop - 1`
        paired by position, each with the bytes its link hashes after the previous digest,
        built by the server (`chain.message`), so the client only hashes."""
        if not self.uuid_ids:
            raise NotImplementedError
        rows = self._rows(self._verify_rows, (start, stop, start, stop))
        rows.sort(key=_paired_position)  # already in order from a merge join: linear
        return rows

    def snapshot_rows(self) -> Iterator[StoredEvent]:
        last: tuple[Any, int] | None = None
        while True:
            where = "WHERE (originator_id, originator_version) > (%s, %s) " if last else ""
            rows = self._rows(
                "SELECT originator_id, originator_version, topic, state "
                f"FROM {self.snapshots_table} {where}"
                "ORDER BY originator_id, originator_version LIMIT 500",
                last or (),
            )
            if not rows:
                return
            for i, v, t, s in rows:
                yield StoredEvent(i, v, t, bytes(s))
            last = (rows[-1][0], rows[-1][1])


PROBE_CONNECT_TIMEOUT_SECONDS = 1
"""The probe's own connection: a stopped server refuses at once; an unreachable host costs this."""
PROBE_POOL_WAIT_SECONDS = 0.5
"""Once the server answers, how long the pool may take to hand out a working connection before
it is replaced by a fresh one."""


class PooledWriter(EventWriter):
    """Checks the server and repairs the pool after a connection failure (the probe of the
    application's circuit breaker, `application.breaker`)."""

    recorder: ArrayInsertPostgresRecorder

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._server_was_down = False

    def replace_broken_connections(self) -> None:
        """Raise `OperationalError` while the server cannot be reached; once it can, make sure
        the pool hands out working connections now.

        The server is asked over a connection of the probe's own, not the pool's: after a long
        outage the pool's reconnection attempts have backed off exponentially (to 16 s and
        more after 20 s down), so it would keep failing commands long after the server is
        back. Then the pool's dead idle connections are dropped (`check`); if it still cannot
        hand out a working connection promptly (its refills are waiting out that back-off), it
        is replaced by a fresh pool with the same settings."""
        datastore = self.recorder.datastore
        pool = datastore.pool
        kwargs = dict(pool.kwargs) if isinstance(pool.kwargs, dict) else {}
        kwargs["connect_timeout"] = PROBE_CONNECT_TIMEOUT_SECONDS
        try:
            with psycopg.connect(**kwargs) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as error:
            self._server_was_down = True
            raise OperationalError(f"cannot reach PostgreSQL: {_first_line(error)}") from None
        if not self._server_was_down:
            pool.check()
            try:
                with pool.connection(timeout=PROBE_POOL_WAIT_SECONDS) as connection:
                    connection.execute("SELECT 1")
            except psycopg.Error:
                log.info("the pool cannot hand out a working connection yet: replacing it")
            else:
                return
        self._server_was_down = False
        datastore.pool = fresh_pool(pool)
        with contextlib.suppress(Exception):
            pool.close(timeout=1)


def fresh_pool(old: ConnectionPool[Any]) -> ConnectionPool[Any]:
    """A new, open pool with `old`'s settings (connections to the server are made at once)."""
    new = type(old)(
        get_password_func=getattr(old, "get_password_func", None),
        connection_class=old.connection_class,
        kwargs=old.kwargs,
        min_size=old.min_size,
        max_size=old.max_size,
        open=False,
        configure=old._configure,
        check=old._check,
        reset=old._reset,
        timeout=old.timeout,
        max_waiting=old.max_waiting,
        max_lifetime=old.max_lifetime,
        max_idle=old.max_idle,
        reconnect_timeout=old.reconnect_timeout,
        num_workers=old.num_workers,
    )
    new.open(wait=False)
    return new


class PostgresPositions(TrackingPositions):
    """Every subscriber's position read in one query and moved in one statement (the policies
    do both at every step: one round trip each instead of one a policy)."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        super().__init__(recorder)
        assert isinstance(recorder, PostgresTrackingRecorder)
        self.datastore = recorder.datastore
        table = SQL("{}.{}").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.tracking_table_name)
        )
        self._read = (
            SQL(
                "SELECT application_name, MAX(notification_id) AS position FROM {} "
                "WHERE application_name = ANY(%s) GROUP BY application_name"
            )
            .format(table)
            .as_string(None)
        )
        # One row a subscriber (the library's single-row tracking): a position only grows.
        self._advance = (
            SQL(
                "INSERT INTO {0} AS t SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                "ON CONFLICT (application_name) DO UPDATE SET notification_id = "
                "EXCLUDED.notification_id WHERE t.notification_id < EXCLUDED.notification_id "
                "RETURNING application_name"
            )
            .format(table)
            .as_string(None)
            if recorder.datastore.single_row_tracking
            else None
        )

    def read(self, names: Sequence[str]) -> dict[str, int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._read, (list(names),), prepare=True)
            found = {row["application_name"]: row["position"] for row in curs.fetchall()}
        return {name: found.get(name) or 0 for name in names}

    def advance(self, positions: Mapping[str, int]) -> set[str]:
        if self._advance is None or len(positions) < 2:
            return super().advance(positions)
        names, values = list(positions), list(positions.values())
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._advance, (names, values), prepare=True)
            return {row["application_name"] for row in curs.fetchall()}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DianaPostgresFactory(DianaFactory, PostgresFactory):
    """The library's PostgreSQL factory with leaner writes and reads, a writer that repairs the
    pool, and this package's ports (see `factory`)."""

    aggregate_recorder_class = ArrayInsertAggregateRecorder
    application_recorder_class = ArrayInsertPostgresRecorder
    process_recorder_class = ArrayInsertProcessRecorder
    writer_class = PooledWriter

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # The library passes no connect timeout to the pool's own connections: a host that
        # does not answer would hold a pool worker for the operating system's TCP timeout.
        kwargs = self.datastore.pool.kwargs
        if isinstance(kwargs, dict):
            kwargs.setdefault("connect_timeout", POOL_CONNECT_TIMEOUT_SECONDS)

    store_kind = "postgres"

    def subscriber_positions(self, recorder: ApplicationRecorder) -> SubscriberPositions:
        if isinstance(recorder, PostgresTrackingRecorder):
            return PostgresPositions(recorder)
        return super().subscriber_positions(recorder)

    def process_recorder(self) -> Any:
        recorder: Any = super().process_recorder()
        recorder.chainer = self.chainer()
        return recorder
