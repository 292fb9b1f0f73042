"""The read-model database: the same database as the events, reached through SQLAlchemy.

Why a wrapper around the engine: the three stores need different care and every caller should
get it without thinking about it.

- SQLite file: WAL (the event store turns it on; we make sure), a 30 s busy timeout, and write
  transactions opened with `BEGIN IMMEDIATE` so a read-then-write never fails on an upgraded lock.
  Transactions are kept short because the event store is the other writer of the file.
- PostgreSQL: the events' schema (via `search_path`), snapshot reads with REPEATABLE READ, and
  `SELECT ... FOR UPDATE` on the positions row serialising writers of one projection.
- memory:// (tests, demos): an in-memory SQLite behind a `StaticPool`, which is one connection;
  a lock serialises its users so threads never interleave transactions on it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, Protocol, cast

from dianabot.projections.schema import TABLES, TableSet
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

StoreKind = Literal["sqlite", "postgres", "memory"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class _Copy(Protocol):
    def write_row(self, row: Sequence[Any]) -> None: ...


class _CopyCursor(Protocol):
    def __enter__(self) -> _CopyCursor: ...
    def __exit__(self, *exc: object) -> None: ...
    def copy(self, statement: str) -> AbstractContextManager[_Copy]: ...


class _CopyConnection(Protocol):
    """What `insert` uses of psycopg 3's connection (the driver under SQLAlchemy's PostgreSQL
    dialect): COPY FROM STDIN. Named structurally, so the read side imports no driver."""

    def cursor(self) -> _CopyCursor: ...


class ReadStore:
    """Engine plus the transaction shapes projections need: write, snapshot read, DDL."""

    def __init__(self, engine: Engine, kind: StoreKind, schema: str | None = None) -> None:
        self.engine = engine
        self.kind = kind
        self.schema = schema
        self._lock: threading.Lock | None = threading.Lock() if kind == "memory" else None
        self._local = threading.local()
        self._upserts: dict[tuple[str, str], Any] = {}

    @classmethod
    def open(cls, kind: StoreKind, url: URL | str, schema: str | None = None) -> ReadStore:
        if kind == "memory":
            engine = create_engine(
                "sqlite://",
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
            _own_sqlite_transactions(engine, wal=False)
        elif kind == "sqlite":
            engine = create_engine(
                url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                pool_size=5,
                max_overflow=5,
            )
            _own_sqlite_transactions(engine, wal=True)
        else:
            connect_args: dict[str, Any] = {"connect_timeout": 5}
            if schema:
                connect_args["options"] = f"-c search_path={_quote_ident(schema)}"
            engine = create_engine(
                url, connect_args=connect_args, pool_size=5, max_overflow=5, pool_pre_ping=True
            )
        return cls(engine, kind, schema)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    # ----- transactions ---------------------------------------------------------------------

    @contextmanager
    def _serialised(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        # One shared connection: a nested use in the same thread would join (and then end) the
        # outer transaction, so refuse it loudly rather than corrupt it.
        if getattr(self._local, "depth", 0):
            raise RuntimeError("nested use of the in-memory read store in one thread")
        with self._lock:
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A short write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._serialised(), self.engine.connect() as conn:
            conn = conn.execution_options(dianabot_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A plain transaction (READ COMMITTED on PostgreSQL; deferred BEGIN on SQLite)."""
        with self._serialised(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction whose every statement sees the same committed state."""
        with self._serialised(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A plain connection for independent reads (autocommit-ish: each read its own)."""
        with self._serialised(), self.engine.connect() as conn:
            try:
                yield conn
            finally:
                conn.rollback()

    # ----- rows -----------------------------------------------------------------------------

    def upsert(
        self, conn: Connection, table: Table, key: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert rows, replacing every non-key column of rows whose key already exists."""
        if not rows:
            return
        cache_key = (table.name, self.dialect)
        statement = self._upserts.get(cache_key)
        if statement is None:
            insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
            statement = insert(table)
            statement = statement.on_conflict_do_update(
                index_elements=list(key),
                set_={c.name: statement.excluded[c.name] for c in table.c if c.name not in key},
            )
            self._upserts[cache_key] = statement
        conn.execute(statement, rows)

    def insert(self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows known to be new: COPY on PostgreSQL, a batched INSERT elsewhere."""
        if not rows:
            return
        if self.dialect != "postgresql":
            conn.execute(table.insert(), rows)
            return
        columns = [c.name for c in table.c]
        # Only the PostgreSQL store gets here, and its SQLAlchemy dialect drives psycopg 3.
        driver = cast(_CopyConnection, conn.connection.driver_connection)
        quoted = ", ".join(_quote_ident(c) for c in columns)
        statement = f"COPY {_quote_ident(table.name)} ({quoted}) FROM STDIN"
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])

    # ----- schema ---------------------------------------------------------------------------

    def create(self, tables: TableSet) -> None:
        """Create the positions table and these tables if missing (idempotent)."""
        with self.write() as conn:
            tables.metadata.create_all(conn, checkfirst=True)

    def drop(self, conn: Connection, tables: TableSet) -> None:
        for table in tables.tables.values():
            table.drop(conn, checkfirst=True)

    def rename(self, conn: Connection, base: str, old: str, new: str) -> None:
        """Rename a table and its indexes and primary key to match the new name."""
        spec = TABLES[base]
        conn.exec_driver_sql(f"ALTER TABLE {_quote_ident(old)} RENAME TO {_quote_ident(new)}")
        if self.dialect == "postgresql":
            conn.exec_driver_sql(
                f"ALTER INDEX {_quote_ident(spec.primary_key_name(old))} "
                f"RENAME TO {_quote_ident(spec.primary_key_name(new))}"
            )
            for columns in spec.index_columns:
                conn.exec_driver_sql(
                    f"ALTER INDEX {_quote_ident(spec.index_name(old, columns))} "
                    f"RENAME TO {_quote_ident(spec.index_name(new, columns))}"
                )
        else:
            # SQLite cannot rename an index: recreate it under the new name (same transaction).
            for columns in spec.index_columns:
                conn.exec_driver_sql(
                    f"DROP INDEX IF EXISTS {_quote_ident(spec.index_name(old, columns))}"
                )
                cols = ", ".join(_quote_ident(c) for c in columns)
                conn.exec_driver_sql(
                    f"CREATE INDEX {_quote_ident(spec.index_name(new, columns))} "
                    f"ON {_quote_ident(new)} ({cols})"
                )

    def table_names(self) -> set[str]:
        with self.read() as conn:
            if self.dialect == "postgresql":
                rows = conn.execute(
                    text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            else:
                rows = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            return {row[0] for row in rows}


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _own_sqlite_transactions(engine: Engine, *, wal: bool) -> None:
    """Let SQLAlchemy emit BEGIN (IMMEDIATE for writes) instead of the sqlite3 module."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
            # Read models are disposable; a lost tail is re-projected from the events.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("dianabot_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
