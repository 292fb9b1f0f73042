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

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
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


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be used; the message says which and why."""


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


def database_from_url(url: str) -> Database:
    if url.startswith("memory:"):
        env = {"PERSISTENCE_MODULE": "dianabot.adapters.eventstore.memory:DianaPOPOFactory"}
        return Database(url, "memory", env, "sqlite://", None)
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise DatabaseUnavailable(f"cannot parse database URL {url!r}: {error}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite(url, parsed)
    if backend in {"postgresql", "postgres"}:
        return _postgres(url, parsed)
    raise DatabaseUnavailable(
        f"unsupported database URL {url!r}: use sqlite:///FILE, postgresql+psycopg://... "
        "or memory://"
    )


def _sqlite(url: str, parsed: URL) -> Database:
    path = parsed.database or ""
    if path in {"", ":memory:"}:
        raise DatabaseUnavailable("an in-memory SQLite database cannot be shared; use memory://")
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


def prepare(database: Database) -> None:
    """Check the database can be reached (and create the schema if one is named), or explain."""
    if database.kind == "sqlite":
        path = Path(database.eventsourcing_env["SQLITE_DBNAME"])
        if not path.parent.exists():
            raise DatabaseUnavailable(f"directory {path.parent} for SQLite file does not exist")
        try:
            sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS).close()
        except sqlite3.Error as error:
            raise DatabaseUnavailable(f"cannot open SQLite file {path}: {error}") from None
    elif database.kind == "postgres":
        env = database.eventsourcing_env
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
                if database.schema:
                    connection.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(database.schema)
                        )
                    )
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL at {database.describe()}: {reason}"
            ) from None
