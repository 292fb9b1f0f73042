"""Does the store answer? A quick check over a connection of its own (health endpoints).

Not through the application's pool: a pool whose server went away waits out its timeout, and
an open SQLite connection keeps reading a file that has been deleted. So:
- SQLite: open the file read-write without creating it (`mode=rw`) and read the events
  table's head: a missing file, or one that is no longer the store, fails;
- PostgreSQL: connect (1 s timeout) and `SELECT 1`;
- memory: always answers.
`probe()` returns the round trip in seconds or raises `DatabaseUnavailable` naming why.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from dianabot.adapters.eventstore.database import EVENTS_TABLE, Database, DatabaseUnavailable

CONNECT_TIMEOUT_SECONDS = 1

Probe = Callable[[], float]


def store_probe(database: Database) -> Probe:
    if database.kind == "sqlite":
        return _sqlite_probe(Path(database.eventsourcing_env["SQLITE_DBNAME"]))
    if database.kind == "postgres":
        return _postgres_probe(database)
    return lambda: 0.0


def _sqlite_probe(path: Path) -> Probe:
    def probe() -> float:
        started = time.perf_counter()
        if not path.is_file():
            raise DatabaseUnavailable(f"the SQLite file {path} is missing")
        try:
            connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=CONNECT_TIMEOUT_SECONDS
            )
            try:
                connection.execute(f"SELECT max(rowid) FROM {EVENTS_TABLE}").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise DatabaseUnavailable(f"cannot read the SQLite store {path}: {error}") from None
        return time.perf_counter() - started

    return probe


def _postgres_probe(database: Database) -> Probe:
    kwargs = database.psycopg_kwargs(CONNECT_TIMEOUT_SECONDS)

    def probe() -> float:
        started = time.perf_counter()
        try:
            with psycopg.connect(**kwargs) as connection:
                connection.execute("SELECT 1").fetchone()
        except psycopg.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
            raise DatabaseUnavailable(
                f"cannot reach PostgreSQL at {database.describe()}: {reason}"
            ) from None
        return time.perf_counter() - started

    return probe
