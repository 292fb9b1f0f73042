"""Which database: maps `DIANABOT_DATABASE_URL` onto this package's persistence factories (the
library's `PERSISTENCE_MODULE` and its settings) and onto SQLAlchemy, and checks it can be used.

sqlite:///FILE -> eventsourcing.sqlite (WAL, busy timeout, leaner reads: `sqlite`); events and
    read models share the file.
postgresql[+psycopg]://user:pw@host:port/db[?schema=NAME] -> eventsourcing.postgres (leaner
    writes and reads: `postgres`).
memory:// -> eventsourcing.popo (tests, throwaway demos: `memory`); read models in an in-memory
    SQLite.
"""

from __future__ import annotations

import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from dianabot.application.service import DianaApplication
from psycopg import sql
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

Kind = Literal["sqlite", "postgres", "memory"]

SQLITE_BUSY_TIMEOUT_SECONDS = 30
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
POSTGRES_POOL_TIMEOUT_SECONDS = 3
"""How long a command waits for a connection from the pool (the library reads it from
`POSTGRES_CONNECT_TIMEOUT`). Short, because a command waiting on a pool whose server is gone
holds up every command behind it; the store's circuit breaker then answers the others at once
(`application.breaker`, docs/operations.md, "Outages")."""


SETTING = "DIANABOT_DATABASE_URL"
EVENTS_TABLE = "stored_events"
"""The events table in a SQLite store (the library's SQLite factory names it so for any app)."""
POSTGRES_EVENTS_TABLE = f"{DianaApplication.name.lower()}_events"
"""The events table in a PostgreSQL store: the library's PostgreSQL factory names its tables
after the application (`dianabot_events`, `dianabot_snapshots`, `dianabot_tracking`)."""
# The library splices the schema name into its SQL unquoted in places: only plain identifiers.
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used; the message says which and why."""


class DatabaseMisconfigured(DatabaseUnavailable):
    """The setting itself is wrong (bad URL, schema name, a file that is no database, no write
    access): retrying will not help, the operator must change it. Raised before anything is
    created."""


class StoreMissing(DatabaseUnavailable):
    """A read-only use found no store (or an empty one) where the setting points: nothing to read,
    and reading must not create one."""


def redact(url: str) -> str:
    """`url` without its password, whether or not SQLAlchemy can parse it (for any message)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


@dataclass(frozen=True)
class Database:
    url: str
    kind: Kind
    eventsourcing_env: dict[str, str] = field(repr=False)
    sqlalchemy_url: URL | str = field(repr=False)
    schema: str | None = None

    def describe(self) -> str:
        """The URL without its password, for messages and logs."""
        if self.kind == "postgres":
            return make_url(str(self.sqlalchemy_url)).render_as_string(hide_password=True)
        return self.url

    def psycopg_kwargs(self, connect_timeout: int, **extra: Any) -> dict[str, Any]:
        """`psycopg.connect` arguments for a PostgreSQL store's own short connections (probes,
        locks), in autocommit."""
        env = self.eventsourcing_env
        return {
            "dbname": env["POSTGRES_DBNAME"],
            "host": env["POSTGRES_HOST"],
            "port": int(env["POSTGRES_PORT"]),
            "user": env["POSTGRES_USER"],
            "password": env["POSTGRES_PASSWORD"] or None,
            "connect_timeout": connect_timeout,
            "autocommit": True,
            **extra,
        }


def database_from_url(url: str) -> Database:
    if url.startswith("memory:"):
        env = {"PERSISTENCE_MODULE": "dianabot.adapters.eventstore.memory:DianaPOPOFactory"}
        return Database(url, "memory", env, "sqlite://", None)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The library's message repeats the URL, password included: say it without.
        raise DatabaseMisconfigured(
            f"{SETTING}: cannot parse {redact(url)!r}; use sqlite:///FILE, "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB or memory://"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url, parsed)
    if backend in {"postgresql", "postgres"}:
        return _postgres(url, parsed)
    raise DatabaseMisconfigured(
        f"{SETTING}: unsupported database {redact(url)!r}; use sqlite:///FILE, "
        "postgresql+psycopg://... or memory://"
    )


def _sqlite(url: str, parsed: URL) -> Database:
    if parsed.host or parsed.username or parsed.password or parsed.port:
        raise DatabaseMisconfigured(
            f"{SETTING}: {redact(url)!r} names a host or user; a SQLite URL is sqlite:///FILE"
        )
    path = parsed.database or ""
    if path in {"", ":memory:"}:
        raise DatabaseMisconfigured(
            f"{SETTING}: an in-memory SQLite database cannot be shared; use memory://"
        )
    env = {
        "PERSISTENCE_MODULE": "dianabot.adapters.eventstore.sqlite:DianaSQLiteFactory",
        "SQLITE_DBNAME": str(Path(path)),
        "SQLITE_LOCK_TIMEOUT": str(SQLITE_BUSY_TIMEOUT_SECONDS),
    }
    return Database(url, "sqlite", env, parsed.set(drivername="sqlite"), None)


def _postgres(url: str, parsed: URL) -> Database:
    query = dict(parsed.query)
    schema = query.pop("schema", None)
    if isinstance(schema, tuple):
        schema = schema[-1]
    if schema and not _SCHEMA_NAME.match(schema):
        raise DatabaseMisconfigured(
            f"{SETTING}: schema name {schema!r} is not a plain identifier "
            "(letters, digits and _, not starting with a digit, at most 63)"
        )
    env = {
        # eventsourcing.postgres with leaner inserts (same tables, lock, NOTIFY and positions).
        "PERSISTENCE_MODULE": "dianabot.adapters.eventstore.postgres:DianaPostgresFactory",
        "POSTGRES_DBNAME": parsed.database or "postgres",
        "POSTGRES_HOST": parsed.host or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": parsed.username or "postgres",
        "POSTGRES_PASSWORD": parsed.password or "",
        "POSTGRES_CONNECT_TIMEOUT": str(POSTGRES_POOL_TIMEOUT_SECONDS),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "20",
        # No pre-ping round trip per checkout: a dropped connection fails its command, which the
        # application retries once (see CoreApplication._command).
        "POSTGRES_PRE_PING": "n",
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    sa_url = parsed.set(drivername="postgresql+psycopg", query=query)
    return Database(url, "postgres", env, sa_url, schema or None)


def prepare(database: Database, *, read_only: bool = False) -> None:
    """Check the database can be used, or explain; create nothing if it cannot.

    `read_only`: the caller only reads, so a missing or empty store is an error (`StoreMissing`)
    and nothing is created, not even a PostgreSQL schema.
    """
    if database.kind == "sqlite":
        _prepare_sqlite(Path(database.eventsourcing_env["SQLITE_DBNAME"]), read_only)
    elif database.kind == "postgres":
        _prepare_postgres(database, read_only)
    elif read_only:
        raise StoreMissing(f"{SETTING}: memory:// starts empty, so there is nothing to read")


def _prepare_sqlite(path: Path, read_only: bool) -> None:
    if not path.parent.is_dir():
        raise DatabaseMisconfigured(
            f"{SETTING}: directory {path.parent} for the SQLite file does not exist"
        )
    if path.exists() and not path.is_file():
        raise DatabaseMisconfigured(f"{SETTING}: {path} is not a file")
    if read_only:
        if not path.exists():
            raise StoreMissing(
                f"no database at {path} ({SETTING}); run a command that writes "
                "(e.g. `dianabot demo`) or point --database-url at an existing store"
            )
    elif not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        # SQLite also needs the directory for its -wal and -shm files.
        raise DatabaseMisconfigured(
            f"{SETTING}: no write access to {path if path.exists() else path.parent} "
            "(SQLite needs to write the file and its directory)"
        )
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    try:
        connection = sqlite3.connect(target, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, uri=read_only)
        try:
            # Reads the header: "file is not a database" surfaces here, before any table is made.
            connection.execute("PRAGMA schema_version").fetchone()
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            empty = (
                EVENTS_TABLE in tables
                and not connection.execute(f"SELECT 1 FROM {EVENTS_TABLE} LIMIT 1").fetchone()
            )
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise DatabaseMisconfigured(f"{SETTING}: cannot use {path} as SQLite: {error}") from None
    if read_only and (EVENTS_TABLE not in tables or empty):
        raise StoreMissing(f"the store at {path} ({SETTING}) is empty: no events yet")


def _prepare_postgres(database: Database, read_only: bool) -> None:
    env = database.eventsourcing_env
    schema = database.schema or "public"
    try:
        with psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS,
            autocommit=True,
        ) as connection:
            if read_only:
                found = connection.execute(
                    "SELECT to_regclass(%s)", [f'"{schema}".{POSTGRES_EVENTS_TABLE}']
                ).fetchone()
                empty = found is None or found[0] is None
                if not empty:
                    empty = not connection.execute(
                        sql.SQL("SELECT 1 FROM {}.{} LIMIT 1").format(
                            sql.Identifier(schema), sql.Identifier(POSTGRES_EVENTS_TABLE)
                        )
                    ).fetchone()
                if empty:
                    raise StoreMissing(
                        f"the store in schema {schema} of {database.describe()} ({SETTING}) "
                        "is empty: no events yet"
                    )
            elif database.schema:
                connection.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(database.schema)
                    )
                )
    except psycopg.Error as error:
        # psycopg's messages name host, port and user, never the password.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {database.describe()} ({SETTING}): {reason}"
        ) from None
