"""Which process holds a role: a lock that one process at a time can hold, per store and name.

Several processes may run the workers (two bots, a bot and `dianabot workers`); one of them
runs the projectors, the policies and the jobs, the others stand by and try again every few
seconds. The bot processes' VIP follower has a lock of its own (`FOLLOWER`): the workers may
run in another process than the bots, so the two roles are held independently. (Correctness
never depends on it: every effect is recorded with its position, so two runners never apply
an event twice. It saves the work and the conflicts of running twice, and the follower's
Telegram messages sent twice.)

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection of its own, its
  key derived from the name, the database and the schema (so other roles and stores in other
  schemas do not contend). The server releases it when that session ends: the holder's
  process died, or its connection broke, which the holder notices (`held()` asks over the
  same connection) and steps down.
- SQLite: an exclusive `flock` on a file beside the database (`<file>.<name>.lock`), which
  the operating system releases when the holder's process dies (also on `kill -9`). The file
  holds the holder's pid, for the standby's log line.
- memory: the store lives in one process, which always holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Protocol

import psycopg
from dianabot.adapters.eventstore.database import Database

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2

WORKERS = "workers"
"""The projectors, policies and jobs (`adapters.workers`)."""
FOLLOWER = "vip-follower"
"""The bot's VIP follower (`adapters.telegram.followers`)."""


class LeaderLock(Protocol):
    description: str

    def acquire(self) -> bool:
        """Try to take the lock without waiting; True if this process holds it now."""
        ...

    def held(self) -> bool:
        """Whether this process still holds it (False once it has been lost)."""
        ...

    def holder(self) -> str | None:
        """Who holds it, if known (for a standby's messages)."""
        ...

    def release(self) -> None: ...


def leader_lock(database: Database, name: str = WORKERS) -> LeaderLock:
    """The lock of the role `name` on this store (one holder per store and name)."""
    if database.kind == "postgres":
        return PostgresLeaderLock(database, name)
    if database.kind == "sqlite":
        return FileLeaderLock(Path(database.eventsourcing_env["SQLITE_DBNAME"]), name)
    return AlwaysLeader()


class AlwaysLeader:
    description = "in-process store (memory://): always held"

    def acquire(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def holder(self) -> str | None:
        return f"pid {os.getpid()}"

    def release(self) -> None:
        """Nothing to release."""


class FileLeaderLock:
    def __init__(self, database_file: Path, name: str = WORKERS) -> None:
        self.name = name
        self.path = database_file.with_name(f"{database_file.name}.{name}.lock")
        self.description = f"file lock {self.path}"
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return self.held()
        handle = open(self.path, "a+")  # noqa: SIM115  (kept open while held)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def held(self) -> bool:
        handle = self._file
        if handle is None:
            return False
        try:  # the same file is still there (not deleted and made again by someone else)
            same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            log.error("the %s lock file %s was removed: no longer holding it", self.name, self.path)
            self.release()
        return same

    def holder(self) -> str | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return f"pid {text}" if text else None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def advisory_key(database: Database, name: str = WORKERS) -> int:
    """A signed 64-bit key naming the role `name` of this database and schema."""
    env = database.eventsourcing_env
    label = f"dianabot-{name}:{env.get('POSTGRES_DBNAME')}:{database.schema or 'public'}"
    return int.from_bytes(
        hashlib.blake2b(label.encode(), digest_size=8).digest(), "big", signed=True
    )


class PostgresLeaderLock:
    def __init__(self, database: Database, name: str = WORKERS) -> None:
        self.name = name
        self.key = advisory_key(database, name)
        self.description = f"PostgreSQL advisory lock {self.key} ({database.describe()})"
        self._kwargs = _connect_kwargs(database, name)
        self._connection: psycopg.Connection[Any] | None = None
        self._held = False

    def acquire(self) -> bool:
        if self._held:
            return self.held()
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(**self._kwargs)
            row = self._connection.execute("SELECT pg_try_advisory_lock(%s)", [self.key]).fetchone()
        except psycopg.Error as error:
            log.warning("cannot ask PostgreSQL for the %s lock: %s", self.name, _first_line(error))
            self._close()
            return False
        self._held = bool(row and row[0])
        return self._held

    def held(self) -> bool:
        if not self._held or self._connection is None:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error as error:
            log.error("lost the %s lock (its connection failed: %s)", self.name, _first_line(error))
            self._close()
            return False
        return True

    def holder(self) -> str | None:
        connection = self._connection
        if connection is None or connection.closed:
            return None
        try:
            row = connection.execute(
                "SELECT l.pid, a.client_addr FROM pg_locks l "
                "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = ((%s >> 32) & 4294967295)::oid "
                "AND l.objid = (%s & 4294967295)::oid "
                "AND l.objsubid = 1",
                [self.key, self.key],
            ).fetchone()
        except psycopg.Error:
            return None
        return None if row is None else f"server pid {row[0]}"

    def release(self) -> None:
        connection = self._connection
        if connection is not None and self._held:
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._held = False
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _connect_kwargs(database: Database, name: str) -> dict[str, Any]:
    return database.psycopg_kwargs(CONNECT_TIMEOUT_SECONDS, application_name=f"dianabot-{name}")


TABLES = "tables"
TABLES_WAIT = "60s"


@contextmanager
def creating_tables(database: Database) -> Iterator[None]:
    """One process at a time per PostgreSQL database and schema creates (or finds) the store's
    tables: two processes starting together on a new schema would both run `CREATE TABLE IF
    NOT EXISTS`, and PostgreSQL refuses the later one (a unique violation in its catalogue).
    A blocking advisory lock, waited for at most `TABLES_WAIT`; without it (unreachable, or
    still held then) the creation goes on unguarded and fails or not as it would have."""
    if database.kind != "postgres":
        yield
        return
    try:
        connection = psycopg.connect(**_connect_kwargs(database, TABLES))
    except psycopg.Error:
        yield
        return
    try:
        try:
            connection.execute(f"SET lock_timeout = '{TABLES_WAIT}'")
            connection.execute("SELECT pg_advisory_lock(%s)", [advisory_key(database, TABLES)])
        except psycopg.Error as error:
            log.warning("creating the tables without their lock: %s", _first_line(error))
        yield
    finally:
        with contextlib.suppress(Exception):
            connection.close()  # the session's lock goes with it


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
