"""Tamper evidence: a keyed hash chain over the event log, written with the events.

Why: the history is the truth, so an edit made behind the application's back (an amount, an
actor, a deleted or forged row) must be detectable. Every event gets one *link*, written by the
recorder in the same transaction as the event (so every writer is covered: commands, group
commit, policies' tracked writes, crafted histories):

    link(p) = HMAC-SHA256(key, link(q) | q | p | committed_at | version | id | topic | state)

where q is the previous chained position (0 and 32 zero bytes for the first link), p this
event's position, `committed_at` the commit time (microseconds since the epoch, UTC; never
earlier than the previous link's, so commit times follow log order) and the rest the stored row
(originator id, version, topic and the stored bytes). The key lives in a file outside the
database (`DIANABOT_AUDIT_KEY_FILE`), so someone who can only write to the database cannot
compute a valid link for an edited or forged row.

Rows (`<events table>_chain`: `position`, `prev_position`, `committed_at`, `link`):
- SQLite `stored_events_chain`, PostgreSQL `<schema>.dianabot_events_chain`, and a list on the
  in-memory recorder. PostgreSQL writers serialise on the events table's lock (taken by every
  insert), SQLite's on its write lock, so the previous link read in the transaction is the head.
- A store that had events before the chain existed: the chain starts at the first event written
  afterwards (`prev_position` 0); `verify` reports the earlier events as an unchained prefix.

The key: created on the first chained write when the chain is empty (32 random bytes, hex, mode
0600, never in the database); when the chain has links and the key is missing, writes fail
rather than continue a chain nobody can verify. Default place: beside a SQLite file
(`<file>.audit-key`); none for PostgreSQL (`DIANABOT_AUDIT_KEY_FILE` is required: `key_file`);
a random key per process for `memory://`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent

GENESIS = bytes(32)
"""The previous link of the first link."""
KEY_ENV = "AUDIT_KEY_FILE"
"""The library environment's name for the key file (`DIANABOT_AUDIT_KEY_FILE` from the shell)."""
SQLITE_KEY_SUFFIX = ".audit-key"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_FIXED = struct.Struct(">qqqqII")  # prev position, position, committed at, version, id, topic


class AuditKeyError(RuntimeError):
    """The audit key cannot be read (or must not be created): the message says where and why."""


class Link(NamedTuple):
    """One row of the chain."""

    position: int
    prev_position: int
    committed_at: int
    """Microseconds since the epoch, UTC."""
    digest: bytes


class Row(NamedTuple):
    """An event row as the chain covers it: its position and stored fields."""

    position: int
    originator_id: bytes
    """16 bytes for a UUID id, UTF-8 for a text id (`id_bytes`)."""
    originator_version: int
    topic: str
    state: bytes


def stored_bytes(value: object) -> bytes | None:
    """A stored column as the bytes a link covers: bytes as they are; text as UTF-8 (SQLite
    turns a BLOB into TEXT when it is rewritten with `replace(state, ...)` in SQL); None for
    anything else (NULL, a number), which no link can match."""
    if type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return None


def id_bytes(originator_id: UUID | str) -> bytes:
    if isinstance(originator_id, UUID):
        return originator_id.bytes
    return str(originator_id).encode()


def micros(moment: datetime) -> int:
    """`moment` (timezone-aware) as microseconds since the epoch."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def moment(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


class Keyed:
    """HMAC-SHA256 with one key, its padded inner and outer states computed once: the same
    digest as `hmac.digest(key, message, "sha256")`, about twice as fast per message (OpenSSL 3
    sets a MAC up anew on every one-shot call)."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(64, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def digest(self, message: bytes) -> bytes:
        inner = self.inner.copy()
        inner.update(message)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_keyed: dict[bytes, Keyed] = {}


def keyed(key: bytes) -> Keyed:
    found = _keyed.get(key)
    if found is None:
        found = _keyed[key] = Keyed(key)
    return found


class WrongType(ValueError):
    """A stored field of an event has a type no written event has (NULL state, text version):
    the row was changed behind the application's back."""


def layout(
    prev_digest: bytes,
    prev_position: int,
    position: int,
    committed_at: int,
    originator_id: bytes,
    version: int,
    topic: bytes,
    state: bytes,
) -> bytes:
    """The bytes a link hashes, from fields of the right types (see module docstring); lengths
    are fixed or prefixed, so no two different rows give the same bytes."""
    fixed = _FIXED.pack(
        prev_position, position, committed_at, version, len(originator_id), len(topic)
    )
    return b"".join((prev_digest, fixed, originator_id, topic, state))


def message(prev_digest: bytes, prev_position: int, committed_at: int, row: Row) -> bytes:
    """`layout` of a row as read back. `WrongType` when a field cannot be what was written."""
    state = row.state if type(row.state) is bytes else stored_bytes(row.state)
    originator_id = row.originator_id
    try:
        topic = row.topic.encode()
        if state is None or type(originator_id) is not bytes:
            raise TypeError("state or id not bytes")
        return layout(
            prev_digest,
            prev_position,
            row.position,
            committed_at,
            originator_id,
            row.originator_version,
            topic,
            state,
        )
    except (TypeError, AttributeError, struct.error):
        raise WrongType(
            "a stored field has a type the application never writes ("
            + ", ".join(
                f"{name} {type(value).__name__ if value is not None else 'NULL'}"
                for name, value in zip(Row._fields[1:], row[1:], strict=True)
            )
            + ")"
        ) from None


def mac(key: bytes, prev_digest: bytes, prev_position: int, committed_at: int, row: Row) -> bytes:
    """The link of one event."""
    return keyed(key).digest(message(prev_digest, prev_position, committed_at, row))


# ----- the key ------------------------------------------------------------------------------


class KeyFile:
    """The audit key, read from (or created in) a file outside the database; `path=None`: a
    random key for this process only (the in-memory store)."""

    def __init__(self, path: Path | None, *, unnamed: str | None = None) -> None:
        """`unnamed`: no file was named and none may be guessed; loading raises this message."""
        self.path = path
        self.unnamed = unnamed
        self._key: bytes | None = (
            None if path is not None or unnamed is not None else secrets.token_bytes(32)
        )
        self._lock = threading.Lock()

    def describe(self) -> str:
        if self.unnamed is not None:
            return "(not set)"
        return str(self.path) if self.path is not None else "(in memory)"

    def load(self, *, create: bool = False) -> bytes:
        """The key; `create`: make the file when it does not exist (only for an empty chain)."""
        if self._key is not None:
            return self._key
        if self.unnamed is not None:
            raise AuditKeyError(self.unnamed)
        with self._lock:
            if self._key is None:
                assert self.path is not None
                if create and not self.path.exists():
                    _create_key_file(self.path)
                self._key = _read_key_file(self.path)
            return self._key


def _read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise AuditKeyError(
            f"audit key file {path} does not exist (DIANABOT_AUDIT_KEY_FILE): the chain "
            "cannot be verified or extended without the key it was written with"
        ) from None
    except OSError as error:
        raise AuditKeyError(f"cannot read audit key file {path}: {error.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise AuditKeyError(f"audit key file {path} does not hold a hexadecimal key") from None
    if len(key) < 16:
        raise AuditKeyError(f"audit key in {path} is too short ({len(key)} bytes, 16 at least)")
    return key


def _create_key_file(path: Path) -> None:
    """Write a fresh key atomically (a temporary file linked into place), mode 0600; another
    process creating it at the same moment wins or loses cleanly."""
    if not path.parent.is_dir():
        raise AuditKeyError(f"cannot create audit key file {path}: no directory {path.parent}")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


POSTGRES_KEY_REQUIRED = (
    "DIANABOT_AUDIT_KEY_FILE is not set: a PostgreSQL store's audit key file must be named "
    "(the same file for every process that writes or verifies, outside the database; "
    "docs/auditing.md)"
)


def key_file(kind: str, named: str | None, sqlite_file: str | None = None) -> KeyFile:
    """The key of a store: the file named by `DIANABOT_AUDIT_KEY_FILE`, else beside a SQLite
    file, a random key per process for `memory://`, and none for PostgreSQL: its processes
    run on several hosts and from any directory, so a guessed place (the working directory)
    would make a process started elsewhere fail every write, or start a chain with a key
    nobody else has. Loading it then says `POSTGRES_KEY_REQUIRED`."""
    if named:
        return KeyFile(Path(named))
    if kind == "sqlite" and sqlite_file:
        return KeyFile(Path(sqlite_file + SQLITE_KEY_SUFFIX))
    if kind == "postgres":
        return KeyFile(None, unnamed=POSTGRES_KEY_REQUIRED)
    return KeyFile(None)


def require_key_file(kind: str, named: str | None) -> None:
    """For a process that writes events: fail at start, not at its first write, when a
    PostgreSQL store's key file is not named (`key_file`)."""
    if kind == "postgres" and not named:
        raise AuditKeyError(POSTGRES_KEY_REQUIRED)


# ----- writing ------------------------------------------------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


class Chainer:
    """Computes the links of one transaction's events, given the chain's head in it."""

    def __init__(self, key: KeyFile, now: Callable[[], datetime] | None = None) -> None:
        self.key = key
        self.now: Callable[[], datetime] = now or utc_now

    def links_after(
        self,
        head: Sequence[Any] | None,
        positions: Sequence[int],
        stored_events: Sequence[StoredEvent],
    ) -> list[Link]:
        """`links` after the head as read by `HEAD_QUERY` (a row, or None: an empty chain)."""
        found = Link(head[0], head[1], head[2], bytes(head[3])) if head is not None else None
        return self.links(found, positions, stored_events)

    def links(
        self,
        head: Link | None,
        positions: Sequence[int],
        stored_events: Sequence[StoredEvent],
    ) -> list[Link]:
        hashed = keyed(self.key.load(create=head is None)).digest
        committed = self._commit_time(head)
        if head is not None:
            prev_position, prev_digest = head.position, head.digest
        else:
            prev_position, prev_digest = 0, GENESIS
        digests = self._digests(
            hashed, prev_position, prev_digest, committed, positions, stored_events
        )
        previous = [prev_position, *positions][: len(positions)]
        return [
            Link(position, before, committed, digest)
            for position, before, digest in zip(positions, previous, digests, strict=True)
        ]

    def following(
        self, head: Link, stored_events: Sequence[StoredEvent]
    ) -> tuple[int, list[bytes]]:
        """The commit time and digests of the links of events at the positions right after
        `head`'s: `links` without a `Link` per event (the PostgreSQL write's common case)."""
        hashed = keyed(self.key.load()).digest
        committed = self._commit_time(head)
        start = head.position + 1
        positions = range(start, start + len(stored_events))
        return committed, self._digests(
            hashed, head.position, head.digest, committed, positions, stored_events
        )

    def _commit_time(self, head: Link | None) -> int:
        committed = time.time_ns() // 1000 if self.now is utc_now else micros(self.now())
        return max(committed, head.committed_at) if head is not None else committed

    @staticmethod
    def _digests(
        hashed: Callable[[bytes], bytes],
        prev_position: int,
        prev_digest: bytes,
        committed: int,
        positions: Sequence[int],
        stored_events: Sequence[StoredEvent],
    ) -> list[bytes]:
        digests = []
        for position, stored in zip(positions, stored_events, strict=True):
            originator_id, state = stored.originator_id, stored.state
            if type(originator_id) is UUID and type(state) is bytes:
                # What a writer always has: `layout` directly, without `message`'s checks
                # (the write path's hot loop; docs/performance.md, "Audit chain").
                text = layout(
                    prev_digest,
                    prev_position,
                    position,
                    committed,
                    originator_id.bytes,
                    stored.originator_version,
                    stored.topic.encode(),
                    state,
                )
            else:
                row = Row(
                    position,
                    id_bytes(originator_id),
                    stored.originator_version,
                    stored.topic,
                    state,
                )
                text = message(prev_digest, prev_position, committed, row)
            prev_digest = hashed(text)
            digests.append(prev_digest)
            prev_position = position
        return digests


class Chained(Protocol):
    """A recorder that writes the chain (every recorder of this package's factories)."""

    chainer: Chainer

    def chain_store(self) -> ChainStore: ...


def values_literal(links: Sequence[Link]) -> str:
    """The links as SQL VALUES rows: integers and hexadecimal digits only, so safe as a
    literal by construction (as `postgres.literal_rows`)."""
    return ",".join(
        f"({int(link.position)},{int(link.prev_position)},{int(link.committed_at)},"
        f"'\\x{link.digest.hex()}'::bytea)"
        for link in links
    )


# ----- reading ------------------------------------------------------------------------------


class ChainStore(Protocol):
    """What verifying, anchoring, exporting and as-of queries read from a store."""

    kind: str

    def event_head(self) -> int: ...
    def chain_head(self) -> Link | None: ...
    def chain_first(self) -> Link | None: ...
    def link_at(self, position: int) -> Link | None: ...
    def link_before(self, position: int) -> Link | None: ...
    def count_events_before(self, position: int) -> int: ...
    def events(self, start: int, stop: int) -> list[Row]:
        """Event rows with `start <= position < stop`, in order."""
        ...

    def links(self, start: int, stop: int) -> list[Link]: ...
    def last_position_committed_by(self, when: datetime) -> int: ...
    def snapshot_rows(self) -> Iterator[StoredEvent]: ...


class SqlChainStore:
    """What the SQL stores' `ChainStore`s share: the queries of the chain table, the event
    head and counts. A subclass gives `events_table`, `chain_table`, `position` (the events'
    position column), `mark` (the driver's parameter) and `_rows`."""

    kind: str
    events_table: str
    chain_table: str
    position: str
    mark: str

    def _rows(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a query; none when the table does not exist (a store from before)."""
        raise NotImplementedError

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        """`_rows` of a statement with `{e}` the events, `{c}` the chain, `{p}` the events'
        position column and `?` the parameters."""
        statement = statement.format(e=self.events_table, c=self.chain_table, p=self.position)
        return self._rows(statement.replace("?", self.mark), params)

    def _links(self, where: str, params: Sequence[Any] = ()) -> list[Link]:
        rows = self._query(f"SELECT * FROM {{c}} {where}", params)
        return [Link(p, q, c, bytes(d)) for p, q, c, d in rows]

    def _link(self, where: str, params: Sequence[Any] = ()) -> Link | None:
        links = self._links(where, params)
        return links[0] if links else None

    def _number(self, statement: str, params: Sequence[Any] = ()) -> int:
        rows = self._query(statement, params)
        return int(rows[0][0] or 0) if rows else 0

    def event_head(self) -> int:
        return self._number("SELECT MAX({p}) FROM {e}")

    def chain_head(self) -> Link | None:
        return self._link("ORDER BY position DESC LIMIT 1")

    def chain_first(self) -> Link | None:
        return self._link("ORDER BY position LIMIT 1")

    def link_at(self, position: int) -> Link | None:
        return self._link("WHERE position = ?", (position,))

    def link_before(self, position: int) -> Link | None:
        return self._link("WHERE position < ? ORDER BY position DESC LIMIT 1", (position,))

    def count_events_before(self, position: int) -> int:
        return self._number("SELECT COUNT(*) FROM {e} WHERE {p} < ?", (position,))

    def links(self, start: int, stop: int) -> list[Link]:
        return self._links("WHERE position >= ? AND position < ? ORDER BY position", (start, stop))

    def last_position_committed_by(self, when: datetime) -> int:
        return self._number(
            "SELECT MAX(position) FROM {c} WHERE committed_at <= ?", (micros(when),)
        )


HEAD_QUERY = (
    "SELECT position, prev_position, committed_at, link FROM {} ORDER BY position DESC LIMIT 1"
)
"""The chain's head, read by a recorder in the events' transaction (`Chainer.links`)."""


@dataclass
class Problem:
    position: int
    kind: str
    """altered, deleted, inserted, reordered, truncated, unchained"""
    detail: str


@dataclass
class Report:
    """What `verify` found: the first problem (None: the chain holds) and the figures."""

    checked: int = 0
    start: int = 0
    """The first position checked."""
    end: int = 0
    """The last position checked (the log's head when verification began)."""
    unchained: int = 0
    """Events before the chain's first link (written before the chain existed)."""
    head: Link | None = None
    problem: Problem | None = None
    anchor_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Anchor:
    position: int
    digest: bytes
    committed_at: int


PAGE = 10_000
AHEAD = 2
"""Pages read ahead in threads while one is hashed (PostgreSQL: each on its own connection)."""
WINDOW = 64
"""How far around a bad link the verifier looks to tell a reordering from an edit."""


class Verifier:
    """Recomputes the chain from the stored rows (see module docstring)."""

    def __init__(self, store: ChainStore, key: KeyFile) -> None:
        self.store = store
        self.key = key

    def verify(
        self,
        from_position: int = 0,
        *,
        anchor: Anchor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Report:
        store = self.store
        key = self.key.load()
        report = Report()
        end = store.event_head()  # read before the chain: a committed event has its link
        first = store.chain_first()
        report.end = end
        if first is None:
            report.unchained = store.count_events_before(end + 1)
            if report.unchained:
                report.problem = Problem(
                    1, "unchained", f"none of the {report.unchained} events has a link"
                )
            elif anchor is not None:
                report.problem = Problem(
                    anchor.position, "truncated", "the anchored chain is gone: no links at all"
                )
            return report
        report.unchained = store.count_events_before(first.position)
        start = max(from_position, first.position)
        previous = store.link_before(start) if start > first.position else None
        prev_position = previous.position if previous is not None else 0
        prev_digest = previous.digest if previous is not None else GENESIS
        report.start = start
        position = start
        last_link: Link | None = previous
        fast = getattr(store, "verify_rows", None)
        if fast is not None:  # the store builds each link's message itself (PostgreSQL)
            last_link = self._fast(key, fast, position, end, prev_position, prev_digest, report)
            if report.problem is not None:
                return report
            if progress is not None:
                progress(report.checked, end - start + 1)
        for events, links in self._pages(position, end) if fast is None else ():
            found = self._check_page(key, events, links, prev_position, prev_digest, report)
            if report.problem is not None:
                return report
            if found is not None:
                last_link = found
                prev_position, prev_digest = found.position, found.digest
            if progress is not None:
                progress(report.checked, end - start + 1)
        report.head = last_link
        # Links past the log's head: written since it was read (their events are there too,
        # same transaction), or left behind by a deleted last event.
        later = store.links(end + 1, end + 1 + PAGE)
        if later:
            present = {row.position for row in store.events(end + 1, later[-1].position + 1)}
            gone = [link.position for link in later if link.position not in present]
            if gone:
                report.problem = Problem(
                    gone[0], "deleted", "the chain has a link here but the event is gone"
                )
                return report
        if anchor is not None:
            self._check_anchor(anchor, last_link, report)
        return report

    def _fast(
        self,
        key: bytes,
        verify_rows: Callable[[int, int], list[tuple[Any, ...]]],
        position: int,
        end: int,
        prev_position: int,
        prev_digest: bytes,
        report: Report,
    ) -> Link | None:
        """The walk of `_check_page` over rows `(event position or None, link position or
        None, link's previous position, link digest, the message after the previous digest)`,
        read a page ahead in a thread."""
        digest = keyed(key).digest
        compare = hmac.compare_digest
        last_position = 0
        checked = 0

        def read(start: int) -> list[tuple[Any, ...]]:
            return verify_rows(start, min(start + PAGE, end + 1))

        try:
            with ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="verify-read") as pool:
                queue: list[Future[list[tuple[Any, ...]]]] = []
                while position <= end and len(queue) < AHEAD:
                    queue.append(pool.submit(read, position))
                    position += PAGE
                while queue:
                    rows = queue.pop(0).result()
                    if position <= end:
                        queue.append(pool.submit(read, position))
                        position += PAGE
                    for event_at, link_at, link_prev, link_digest, rest in rows:
                        if link_at is None:
                            report.problem = Problem(
                                event_at,
                                "inserted",
                                "an event without a link (not written by the application)",
                            )
                            return None
                        if event_at is None:
                            report.problem = Problem(
                                link_at,
                                "deleted",
                                "the chain has a link here but the event is gone",
                            )
                            return None
                        if (
                            link_prev != prev_position
                            or rest is None  # a NULL field: the slow path names it
                            or not compare(digest(prev_digest + rest), link_digest)
                        ):
                            # The slow path names it (and its kind).
                            self._check_page(
                                key,
                                self.store.events(event_at, event_at + 1),
                                self.store.links(event_at, event_at + 1),
                                prev_position,
                                prev_digest,
                                report,
                            )
                            if report.problem is None:  # the server's bytes differ
                                report.problem = Problem(
                                    event_at, "altered", "the event does not match its link"
                                )
                            return None
                        checked += 1
                        prev_position, prev_digest, last_position = link_at, link_digest, link_at
        finally:
            report.checked += checked
        return self.store.link_at(last_position) if last_position else None

    def _pages(self, position: int, end: int) -> Iterator[tuple[list[Row], list[Link]]]:
        """Pages of events and their links from `position` to `end`; on PostgreSQL the next
        page is read in a thread while this one is hashed (the driver waits without the GIL)."""
        store = self.store

        def read(start: int) -> tuple[list[Row], list[Link]]:
            stop = min(start + PAGE, end + 1)
            return store.events(start, stop), store.links(start, stop)

        if store.kind != "postgres":
            while position <= end:
                yield read(position)
                position += PAGE
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-read") as pool:
            pending = pool.submit(read, position) if position <= end else None
            while pending is not None:
                page = pending.result()
                position += PAGE
                pending = pool.submit(read, position) if position <= end else None
                yield page

    def _check_page(
        self,
        key: bytes,
        events: list[Row],
        links: list[Link],
        prev_position: int,
        prev_digest: bytes,
        report: Report,
    ) -> Link | None:
        """Walk one page of events and links together (both in position order)."""
        digest = keyed(key).digest
        compare = hmac.compare_digest
        last: Link | None = None
        i, count = 0, len(links)
        checked = 0
        for row in events:
            position = row.position
            if i < count and links[i].position < position:  # a link whose event is gone
                report.problem = Problem(
                    links[i].position, "deleted", "the chain has a link here but the event is gone"
                )
                break
            if i == count or links[i].position != position:
                report.problem = Problem(
                    position, "inserted", "an event without a link (not written by the application)"
                )
                break
            link = links[i]
            i += 1  # noqa: SIM113  (links, not events: they part at a problem)
            if link.prev_position != prev_position:
                if link.prev_position > prev_position:
                    report.problem = Problem(
                        link.prev_position,
                        "deleted",
                        f"the link at {position} follows {link.prev_position}, which is gone",
                    )
                else:
                    report.problem = Problem(
                        prev_position,
                        "inserted",
                        f"the link at {position} follows {link.prev_position}, not {prev_position}",
                    )
                break
            try:
                expected = digest(message(prev_digest, prev_position, link.committed_at, row))
            except WrongType as error:
                report.problem = Problem(position, "altered", str(error))
                break
            if not compare(expected, link.digest):
                report.problem = self._classify(key, row)
                break
            checked += 1
            prev_position, prev_digest, last = position, link.digest, link
        else:
            if i < count:
                report.problem = Problem(
                    links[i].position, "deleted", "the chain has a link here but the event is gone"
                )
        report.checked += checked
        return last

    def _classify(self, key: bytes, row: Row) -> Problem:
        """A link that does not match its event: an edit, or rows moved (see `WINDOW`)."""
        store = self.store
        position = row.position
        low, high = max(1, position - WINDOW), position + WINDOW + 1
        events = {r.position: r for r in store.events(low, high)}
        links = {link.position: link for link in store.links(low - WINDOW, high)}

        def matches(event: Row | None, link: Link | None) -> bool:
            if event is None or link is None:
                return False
            before = links.get(link.prev_position) or store.link_at(link.prev_position)
            prev_digest = GENESIS if link.prev_position == 0 else (before and before.digest)
            if prev_digest is None:
                return False
            try:
                expected = mac(
                    key,
                    prev_digest,
                    link.prev_position,
                    link.committed_at,
                    event._replace(position=link.position),
                )
            except WrongType:
                return False
            return hmac.compare_digest(expected, link.digest)

        home = [q for q in links if q != position and matches(row, links[q])]
        following = events.get(position + 1)
        if home:
            q = home[0]
            if q == position + 1 and not matches(following, links.get(position)):
                return Problem(
                    position, "deleted", "an event was removed here and later ones renumbered"
                )
            return Problem(position, "reordered", f"this event was written at position {q}")
        if matches(following, links.get(position)):
            return Problem(position, "inserted", "an event was added here, later ones renumbered")
        return Problem(position, "altered", "the event's stored fields do not match its link")

    def _check_anchor(self, anchor: Anchor, last: Link | None, report: Report) -> None:
        report.anchor_checked = True
        if last is None or last.position < anchor.position:
            head = last.position if last is not None else 0
            report.problem = Problem(
                head + 1,
                "truncated",
                f"the anchor names position {anchor.position}; the chain ends at {head}",
            )
            return
        at = last if last.position == anchor.position else self.store.link_at(anchor.position)
        if at is None or not hmac.compare_digest(at.digest, anchor.digest):
            report.problem = Problem(
                anchor.position,
                "altered",
                "the link at the anchored position differs from the anchor (history rewritten, "
                "or an anchor of another store or key)",
            )


def chain_store_of(app: Any) -> ChainStore:
    """The chain of an application's store (its recorder writes it)."""
    recorder = app.recorder
    store = getattr(recorder, "chain_store", None)
    if store is None:
        raise TypeError(f"{type(recorder).__name__} writes no chain")
    result: ChainStore = store()
    return result


def key_of(app: Any) -> KeyFile:
    key: KeyFile = app.recorder.chainer.key
    return key


def use_clock(app: Any, now: Callable[[], datetime]) -> None:
    """Commit times from the application's clock (a manual clock in tests and the demo)."""
    chainer = getattr(app.recorder, "chainer", None)
    if chainer is not None:
        chainer.now = now


class AuditChain:
    """The chain as the rest of the code uses it (ports are declared where used): verify,
    the head for anchors, and the position committed by a moment (as-of queries)."""

    def __init__(self, app: Any) -> None:
        self.store = chain_store_of(app)
        self.key = key_of(app)

    def verify(
        self,
        from_position: int = 0,
        *,
        anchor: Anchor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Report:
        return Verifier(self.store, self.key).verify(
            from_position, anchor=anchor, progress=progress
        )

    def head(self) -> Link | None:
        return self.store.chain_head()

    def last_position_committed_by(self, when: datetime) -> int:
        """The highest log position whose commit time is <= `when` (0 if none). Events of an
        unchained prefix have no commit time: they count as committed before the first link."""
        return self.store.last_position_committed_by(when)
