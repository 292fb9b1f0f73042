"""Personal data at the store's boundary: encrypted with a key per user, erased by destroying it.

The domain marks personal values as `domain.personal.PersonalText` (a subject, the pseudonym
`tg:user:<id>`, and a text). Here:
- `PersonalTextEncrypted` is the transcoding of that type: the text is stored as AES-GCM
  ciphertext under the subject's current key, `{"_type_": "personal", "_data_": {"s": subject,
  "k": key id, "n": nonce, "c": ciphertext}}` (base64), bound to subject and key id (associated
  data). An erased value is stored as `{"s": subject}`. Reading a value whose key is gone (or
  that does not authenticate) gives an erased value: it never raises.
- `Keyring` keeps the keys in a table of the same database (`personal_keys`: subject, key id,
  key, created at; one current key per subject) and the subjects forgotten so far
  (`personal_erasures`: subject, forgotten at; pseudonyms only). A key is created, in its own
  short transaction, the first time a subject's text is encoded, *before* the events that use
  it are written: so no committed ciphertext lacks its key, and the recorders' insert path is
  untouched (the stored bytes of events are never changed by anything here). If the events'
  transaction then fails, the key stays, unused (harmless). Two processes creating a key at
  once: one insert wins (`ON CONFLICT DO NOTHING`), both use the winner's.

  Why not in the events' transaction: the key must exist to encrypt, and encrypting happens
  while the events are encoded (the library's mapper), before the recorder opens its
  transaction; the recorder gets opaque (possibly compressed) bytes and cannot tell which keys
  they use. A key chosen there but stored with the events would, when another process stored a
  different key for the subject first, leave committed ciphertext under a key nobody has.
  Why the order is safe: the key's commit returns before the events' transaction begins, and
  both stores make commits durable in commit order (PostgreSQL's and SQLite's write-ahead logs
  are replayed in order; a commit lost to a crash takes every later one with it), so events
  that survive a crash always find their key. Tested by failing the events' write right after
  the key's commit (tests/integration/test_forget.py).
- `PersonalMapper` masks *legacy* values, the plain text of events stored before encryption
  (read through the domain's upcasters), once their subject is forgotten: those bytes cannot
  be rewritten, only hidden when read (docs/privacy.md says so).
- `Erasure` is what `dianabot admin forget` runs at the store after recording
  `PlayerForgotten`: delete the subject's key rows, record the subject as forgotten, delete
  the snapshots of the aggregates that held the data (derived data: the aggregate is replayed
  from its events). Deleting rows only: the events' bytes, and so any chain over them, stay.

Keys read to decrypt are cached per process for `KEY_CACHE_SECONDS`: another process that
forgets a user is seen here within that time (an in-process forget clears the cache at once).
The key to encrypt with is read from the table again after `CURRENT_KEY_SECONDS`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from dianabot.domain.personal import PersonalText
from dianabot.domain.player import PERSONAL_FIELDS, Player
from eventsourcing.persistence import (
    AggregateRecorder,
    Mapper,
    ProgrammingError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.popo import POPOAggregateRecorder
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore
from psycopg.errors import UndefinedTable
from psycopg.sql import SQL, Composed, Identifier

log = logging.getLogger(__name__)

KEY_TABLE = "personal_keys"
ERASURE_TABLE = "personal_erasures"
KEY_CACHE_SECONDS = 10.0
CURRENT_KEY_SECONDS = 1.0
"""How long a process encrypts with a subject's key without asking the table again (one event or
snapshot encrypts a few values of one subject: one read)."""
"""How long a process trusts a key (or its absence, or a subject's not being forgotten) it read."""
MAX_CACHED = 10_000
"""Entries per cache at most: past that, the cache starts again (a few reads more)."""
BULK_KEYS = MAX_CACHED // 2
"""A reader missing a key reads all keys at once if there are at most this many (else one)."""
NONCE_BYTES = 12
KEY_BITS = 256

LEGACY_PERSONAL_EVENTS: dict[type, tuple[str, ...]] = {Player.PlayerRegistered: PERSONAL_FIELDS}
"""Event classes whose older versions held personal fields in plain text (upcast as legacy)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _aad(subject: str, key_id: str) -> bytes:
    return f"{subject}|{key_id}".encode()


# ----- key tables, per store ------------------------------------------------------------------


class KeyTable(Protocol):
    """Where the keys and the forgotten subjects are kept (one per store)."""

    def create(self) -> None: ...

    def key(self, key_id: str) -> bytes | None: ...

    def current(self, subject: str) -> tuple[str, bytes] | None: ...

    def add(self, subject: str, key_id: str, key: bytes) -> tuple[str, bytes]:
        """Insert a key for `subject` unless it has one; return the subject's key."""
        ...

    def forgotten(self, subject: str) -> bool: ...

    def forget(self, subject: str) -> int:
        """Delete `subject`'s keys and record it as forgotten; how many keys were deleted."""
        ...

    def key_ids(self, subject: str) -> list[str]: ...

    def some_keys(self, limit: int) -> list[tuple[str, bytes]]:
        """Up to `limit` (key id, key) pairs: a reader's cache filled in one query."""
        ...


def _now() -> str:
    return datetime.now(UTC).isoformat()


class MemoryKeys:
    """`memory://`: the keys live as long as the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, bytes]] = {}
        self._erased: set[str] = set()

    def create(self) -> None:
        """Nothing to create."""

    def key(self, key_id: str) -> bytes | None:
        with self._lock:
            for found, key in self._keys.values():
                if found == key_id:
                    return key
        return None

    def current(self, subject: str) -> tuple[str, bytes] | None:
        with self._lock:
            return self._keys.get(subject)

    def add(self, subject: str, key_id: str, key: bytes) -> tuple[str, bytes]:
        with self._lock:
            return self._keys.setdefault(subject, (key_id, key))

    def forgotten(self, subject: str) -> bool:
        with self._lock:
            return subject in self._erased

    def forget(self, subject: str) -> int:
        with self._lock:
            self._erased.add(subject)
            return 1 if self._keys.pop(subject, None) is not None else 0

    def key_ids(self, subject: str) -> list[str]:
        with self._lock:
            found = self._keys.get(subject)
            return [] if found is None else [found[0]]

    def some_keys(self, limit: int) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self._keys.values())[:limit]


class SQLiteKeys:
    """The tables in the SQLite file, through the library's datastore (its connections)."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def create(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {KEY_TABLE} (subject TEXT PRIMARY KEY, "
                "key_id TEXT NOT NULL UNIQUE, key BLOB NOT NULL, created_at TEXT NOT NULL)"
            )
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {ERASURE_TABLE} (subject TEXT PRIMARY KEY, "
                "forgotten_at TEXT NOT NULL)"
            )

    def _one(self, statement: str, params: Sequence[Any]) -> Any:
        try:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, params)
                return cursor.fetchone()
        except Exception as error:  # a store from before this table: nothing in it
            if "no such table" in str(error):
                return None
            raise

    def key(self, key_id: str) -> bytes | None:
        row = self._one(f"SELECT key FROM {KEY_TABLE} WHERE key_id = ?", (key_id,))
        return None if row is None else bytes(row[0])

    def current(self, subject: str) -> tuple[str, bytes] | None:
        row = self._one(f"SELECT key_id, key FROM {KEY_TABLE} WHERE subject = ?", (subject,))
        return None if row is None else (str(row[0]), bytes(row[1]))

    def add(self, subject: str, key_id: str, key: bytes) -> tuple[str, bytes]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"INSERT INTO {KEY_TABLE} (subject, key_id, key, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (subject) DO NOTHING",
                (subject, key_id, key, _now()),
            )
            cursor.execute(f"SELECT key_id, key FROM {KEY_TABLE} WHERE subject = ?", (subject,))
            row = cursor.fetchone()
        return str(row[0]), bytes(row[1])

    def forgotten(self, subject: str) -> bool:
        return self._one(f"SELECT 1 FROM {ERASURE_TABLE} WHERE subject = ?", (subject,)) is not None

    def forget(self, subject: str) -> int:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {KEY_TABLE} WHERE subject = ?", (subject,))
            deleted = cursor.sqlite_cursor.rowcount
            cursor.execute(
                f"INSERT INTO {ERASURE_TABLE} (subject, forgotten_at) VALUES (?, ?) "
                "ON CONFLICT (subject) DO UPDATE SET forgotten_at = excluded.forgotten_at",
                (subject, _now()),
            )
        return max(deleted, 0)

    def key_ids(self, subject: str) -> list[str]:
        return [
            str(row[0])
            for row in self._all(f"SELECT key_id FROM {KEY_TABLE} WHERE subject = ?", (subject,))
        ]

    def some_keys(self, limit: int) -> list[tuple[str, bytes]]:
        rows = self._all(f"SELECT key_id, key FROM {KEY_TABLE} LIMIT ?", (limit,))
        return [(str(row[0]), bytes(row[1])) for row in rows]

    def _all(self, statement: str, params: Sequence[Any]) -> list[Any]:
        try:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        except Exception as error:
            if "no such table" in str(error):
                return []
            raise


class PostgresKeys:
    """The tables in the store's schema, through the library's datastore (its pool)."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore
        schema = Identifier(datastore.schema)
        self._keys = SQL("{}.{}").format(schema, Identifier(KEY_TABLE))
        self._erasures = SQL("{}.{}").format(schema, Identifier(ERASURE_TABLE))

    def create(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (subject text PRIMARY KEY, "
                    "key_id text NOT NULL UNIQUE, key bytea NOT NULL, "
                    "created_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._keys)
            )
            cursor.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (subject text PRIMARY KEY, "
                    "forgotten_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._erasures)
            )

    def _rows(self, statement: Composed, params: Sequence[Any]) -> list[Any]:
        try:
            with self.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, params)
                return list(cursor.fetchall())
        except ProgrammingError as error:  # the library's, wrapping psycopg's
            if isinstance(error.__cause__, UndefinedTable):  # a store from before these tables
                return []
            raise

    def key(self, key_id: str) -> bytes | None:
        rows = self._rows(SQL("SELECT key FROM {} WHERE key_id = %s").format(self._keys), [key_id])
        return bytes(rows[0]["key"]) if rows else None

    def current(self, subject: str) -> tuple[str, bytes] | None:
        rows = self._rows(
            SQL("SELECT key_id, key FROM {} WHERE subject = %s").format(self._keys), [subject]
        )
        return (rows[0]["key_id"], bytes(rows[0]["key"])) if rows else None

    def add(self, subject: str, key_id: str, key: bytes) -> tuple[str, bytes]:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL(
                    "INSERT INTO {} (subject, key_id, key) VALUES (%s, %s, %s) "
                    "ON CONFLICT (subject) DO NOTHING"
                ).format(self._keys),
                [subject, key_id, key],
            )
            cursor.execute(
                SQL("SELECT key_id, key FROM {} WHERE subject = %s").format(self._keys), [subject]
            )
            row = cursor.fetchone()
        assert row is not None
        return row["key_id"], bytes(row["key"])

    def forgotten(self, subject: str) -> bool:
        statement = SQL("SELECT 1 AS one FROM {} WHERE subject = %s").format(self._erasures)
        return bool(self._rows(statement, [subject]))

    def forget(self, subject: str) -> int:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(SQL("DELETE FROM {} WHERE subject = %s").format(self._keys), [subject])
            deleted = cursor.rowcount
            cursor.execute(
                SQL(
                    "INSERT INTO {} (subject) VALUES (%s) "
                    "ON CONFLICT (subject) DO UPDATE SET forgotten_at = now()"
                ).format(self._erasures),
                [subject],
            )
        return max(deleted, 0)

    def key_ids(self, subject: str) -> list[str]:
        rows = self._rows(
            SQL("SELECT key_id FROM {} WHERE subject = %s").format(self._keys), [subject]
        )
        return [row["key_id"] for row in rows]

    def some_keys(self, limit: int) -> list[tuple[str, bytes]]:
        rows = self._rows(SQL("SELECT key_id, key FROM {} LIMIT %s").format(self._keys), [limit])
        return [(row["key_id"], bytes(row["key"])) for row in rows]


# ----- the keyring: cached keys, encryption ---------------------------------------------------


class Keyring:
    """The keys of one store, cached for `KEY_CACHE_SECONDS` (see the module docstring)."""

    def __init__(
        self,
        table: KeyTable,
        *,
        ttl: float = KEY_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[float, bytes | None]] = {}
        self._current: dict[str, tuple[float, str, bytes]] = {}
        self._forgotten: dict[str, tuple[float, bool]] = {}
        self._bulk_at: float | None = None

    def current(self, subject: str) -> tuple[str, bytes]:
        """The subject's key to encrypt with, created (and committed) if it has none. Read from
        the table again after `CURRENT_KEY_SECONDS`: a user who comes back that soon after
        another process forgot them could have their new values sealed with the destroyed key
        (read as erased: the profile falls back to Telegram's name; docs/privacy.md)."""
        now = self.clock()
        with self._lock:
            cached = self._current.get(subject)
        if cached is not None and now - cached[0] < CURRENT_KEY_SECONDS:
            return cached[1], cached[2]
        found = self.table.current(subject)
        if found is None:
            found = self.table.add(subject, os.urandom(16).hex(), AESGCM.generate_key(KEY_BITS))
            log.info("personal data key created for %s", subject)
        with self._lock:
            _bounded(self._current)[subject] = (now, found[0], found[1])
            _bounded(self._by_id)[found[0]] = (now, found[1])
        return found

    def key(self, key_id: str) -> bytes | None:
        now = self.clock()
        with self._lock:
            cached = self._by_id.get(key_id)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        if self._bulk_at is None or now - self._bulk_at >= self.ttl:
            # A replay meets many users' keys: read them all in one query when they are few.
            self._bulk_at = now
            keys = dict(self.table.some_keys(BULK_KEYS + 1))
            if len(keys) <= BULK_KEYS:  # every key there is: one absent was destroyed
                bulk = keys.get(key_id)
                with self._lock:
                    cache = _bounded(self._by_id)
                    for found_id, found in keys.items():
                        cache[found_id] = (now, found)
                    cache[key_id] = (now, bulk)
                return bulk
        key = self.table.key(key_id)
        with self._lock:
            _bounded(self._by_id)[key_id] = (now, key)
        return key

    def forgotten(self, subject: str) -> bool:
        now = self.clock()
        with self._lock:
            cached = self._forgotten.get(subject)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        answer = self.table.forgotten(subject)
        with self._lock:
            _bounded(self._forgotten)[subject] = (now, answer)
        return answer

    def forget(self, subject: str) -> int:
        """Destroy the subject's keys and remember it as forgotten (the cache too)."""
        doomed = self.table.key_ids(subject)
        deleted = self.table.forget(subject)
        with self._lock:
            self._current.pop(subject, None)
            for key_id in doomed:
                self._by_id.pop(key_id, None)
            self._forgotten.pop(subject, None)
        return deleted

    def encrypt(self, value: PersonalText) -> dict[str, str]:
        if value.text is None:
            return {"s": value.subject}
        key_id, key = self.current(value.subject)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, value.text.encode(), _aad(value.subject, key_id))
        return {"s": value.subject, "k": key_id, "n": _b64(nonce), "c": _b64(sealed)}

    def decrypt(self, data: dict[str, str]) -> PersonalText:
        subject = data["s"]
        key_id, nonce, sealed = data.get("k"), data.get("n"), data.get("c")
        if key_id is None or nonce is None or sealed is None:
            return PersonalText(subject, None)
        key = self.key(key_id)
        if key is None:  # destroyed: the user was forgotten
            return PersonalText(subject, None)
        try:
            text = AESGCM(key).decrypt(_unb64(nonce), _unb64(sealed), _aad(subject, key_id))
        except (InvalidTag, ValueError):
            log.warning("personal data of %s does not authenticate: read as erased", subject)
            return PersonalText(subject, None)
        return PersonalText(subject, text.decode())


def _bounded(cache: dict[str, Any]) -> dict[str, Any]:
    if len(cache) >= MAX_CACHED:
        cache.clear()
    return cache


class PersonalTextEncrypted(Transcoding):
    """`PersonalText` in the stored JSON, encrypted (see the module docstring)."""

    type = PersonalText
    name = "personal"

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def encode(self, obj: PersonalText) -> dict[str, str]:
        return self.keyring.encrypt(obj)

    def decode(self, data: dict[str, str]) -> PersonalText:
        return self.keyring.decrypt(data)


class PersonalMapper(Mapper[UUID]):
    """The library's mapper, masking legacy plain-text personal values of forgotten users."""

    keyring: Keyring | None = None

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event = super().to_domain_event(stored_event)
        fields = LEGACY_PERSONAL_EVENTS.get(type(event))
        if fields is not None and self.keyring is not None:
            state = event.__dict__
            for name in fields:
                value = state.get(name)
                if (
                    type(value) is PersonalText
                    and value.legacy
                    and value.text is not None
                    and self.keyring.forgotten(value.subject)
                ):
                    state[name] = value.erased_copy()
        return event


# ----- erasure --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErasureReport:
    subject: str
    keys_deleted: int
    snapshots_deleted: int


class Erasure:
    """What forgetting does at the store (`application.ports.PersonalDataStore`)."""

    def __init__(self, keyring: Keyring, snapshots: AggregateRecorder | None) -> None:
        self.keyring = keyring
        self.snapshots = snapshots

    def erase(self, subject: str, aggregate_ids: Sequence[UUID]) -> ErasureReport:
        keys = self.keyring.forget(subject)
        snapshots = sum(delete_snapshots(self.snapshots, i) for i in aggregate_ids)
        log.info("forgot %s: %d keys and %d snapshots deleted", subject, keys, snapshots)
        return ErasureReport(subject, keys, snapshots)

    def key_ids(self, subject: str) -> list[str]:
        """The subject's key ids in the store (tests, diagnostics)."""
        return self.keyring.table.key_ids(subject)

    def forgotten(self, subject: str) -> bool:
        return self.keyring.table.forgotten(subject)


def delete_snapshots(recorder: AggregateRecorder | None, aggregate_id: UUID) -> int:
    """Delete every stored snapshot of `aggregate_id` (derived data: the aggregate replays from
    its events); how many."""
    if recorder is None:
        return 0
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                f"DELETE FROM {recorder.events_table_name} WHERE originator_id = ?",
                (aggregate_id.hex,),
            )
            return max(cursor.sqlite_cursor.rowcount, 0)
    if isinstance(recorder, PostgresAggregateRecorder):
        table = SQL("{}.{}").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
        )
        with recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL("DELETE FROM {} WHERE originator_id = %s").format(table), [aggregate_id]
            )
            return max(cursor.rowcount, 0)
    if isinstance(recorder, POPOAggregateRecorder):
        return _delete_popo(recorder, aggregate_id)
    raise TypeError(f"cannot delete snapshots of {type(recorder).__name__}")


_EMPTY = StoredEvent(originator_id="", originator_version=0, topic="", state=b"")


def _delete_popo(recorder: POPOAggregateRecorder, aggregate_id: UUID) -> int:
    with recorder._database_lock:
        versions = recorder._stored_events_index.pop(str(aggregate_id), {})
        for index in versions.values():
            recorder._stored_events[index] = _EMPTY
        return len(versions)


def table_for(datastore: Any) -> KeyTable:
    if isinstance(datastore, SQLiteDatastore):
        return SQLiteKeys(datastore)
    if isinstance(datastore, PostgresDatastore):
        return PostgresKeys(datastore)
    return MemoryKeys()
