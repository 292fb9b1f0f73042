"""Runs projectors over the notification log: batched, tracked, isolated, live.

One pass reads a page of notifications, decodes each event once and feeds every projector that
wants it; the projectors change cached rows in memory; then one short transaction writes every
changed row and every projector's new position together. So:

- idempotent: rows and position commit together, and a batch only commits if the position in the
  database is still the one the batch started from (a crash, a concurrent runner, a rebuild swap
  or a reconciliation fix in between make the batch start over from the database);
- isolated: a projector that raises on an event is stopped just before it (its earlier events are
  kept), marked failed with the event and the error, and retried with backoff; the others go on;
- observable: positions, state, last error and the failing event live in `projection_positions`,
  readable from any process (`status()`), and lag is the head of the log minus the position.

Live mode waits for new events: PostgreSQL LISTEN on the event table's channel (the one the event
store NOTIFYs on every insert) with a polling fallback; the in-memory store's own listener;
SQLite polling.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dianabot.projections.base import Projector, sql_loader
from dianabot.projections.log import LogReader
from dianabot.projections.schema import TableSet
from dianabot.projections.store import ReadStore
from eventsourcing.application import Application
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
BUILDING = "building"
OUTDATED = "outdated"

MAX_RETRY_DELAY = 300.0
FlushHook = Callable[[Connection, "Batch"], None]
Progress = Callable[[int, int], None]


@dataclass
class Slot:
    """One projector in a runner, with where it stands (as last read from or written to the
    database) and, during a batch, what it may and did do."""

    projector: Projector
    key: str
    position: int = 0
    generation: int = 0
    state: str = OK
    failed_position: int | None = None
    last_error: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    until: int | None = None
    """A ceiling for this projector alone (a reconciliation compares each at its own position)."""
    stop: int = 0
    broken: tuple[int, str] | None = None

    @property
    def name(self) -> str:
        return self.projector.name


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    state: str
    last_error: str | None
    failed_position: int | None
    generation: int
    updated_at: datetime | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "state": self.state,
            "last_error": self.last_error,
            "failed_position": self.failed_position,
            "generation": self.generation,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


@dataclass
class Batch:
    """What one step read and applied (for progress reports and tests)."""

    start: int
    end: int
    read: int = 0
    applied: int = 0
    slots: list[Slot] = field(default_factory=list)


class ProjectionRunner:
    """Feeds a set of projectors from one application's notification log."""

    def __init__(
        self,
        app: Application[Any],
        store: ReadStore,
        slots: list[Slot],
        *,
        page_size: int = 1000,
        max_batch: int = 5000,
        max_cached_rows: int = 200_000,
        max_dirty_rows: int = 500_000,
        poll_interval: float = 0.25,
    ) -> None:
        self.app = app
        self.store = store
        self.reader = LogReader(app)
        self.slots = slots
        self.page_size = page_size
        self.max_batch = max_batch
        self.max_cached_rows = max_cached_rows
        self.max_dirty_rows = max_dirty_rows
        self._progress: tuple[Progress, int] | None = None
        self.poll_interval = poll_interval
        self.on_flush: FlushHook | None = None
        """Test seam: called inside the write transaction, after rows, before commit."""
        self._read_conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._waker: _Waker | None = None
        self._synced = False
        self._step_lock = threading.Lock()

    @classmethod
    def for_projectors(
        cls,
        app: Application[Any],
        store: ReadStore,
        projector_classes: list[type[Projector]],
        *,
        suffix: str = "",
        **options: Any,
    ) -> ProjectionRunner:
        """A runner of these projectors on their live tables ('' suffix) or a shadow copy."""
        runner = cls(app, store, [], **options)
        loader = sql_loader(runner._loading_connection)
        for projector_class in projector_classes:
            projector = projector_class(TableSet(projector_class.tables, suffix), loader)
            key = projector_class.name if not suffix else f"{projector_class.name}__{suffix}"
            runner.slots.append(Slot(projector, key))
        return runner

    # ----- schema and positions -------------------------------------------------------------

    def ensure_schema(self, *, state: str = OK) -> None:
        """Create missing tables and position rows. Safe to call from any number of processes
        (one that loses a creation race retries and finds the winner's tables)."""
        for attempt in range(3):
            try:
                self._ensure_schema(state)
                return
            except DBAPIError:
                if attempt == 2:
                    raise
                log.info("schema creation raced with another process; retrying")
                time.sleep(0.1 * (attempt + 1))

    def _ensure_schema(self, state: str) -> None:
        for slot in self.slots:
            self.store.create(slot.projector.tableset)
        positions = self.slots[0].projector.tableset.positions if self.slots else None
        if positions is None:
            return
        with self.store.write() as conn:
            existing = {
                row.name: row
                for row in conn.execute(
                    select(positions.c.name, positions.c.version).where(
                        positions.c.name.in_([s.key for s in self.slots])
                    )
                )
            }
            for slot in self.slots:
                row = existing.get(slot.key)
                if row is None:
                    conn.execute(
                        insert(positions).values(
                            name=slot.key,
                            position=0,
                            state=state,
                            generation=0,
                            version=slot.projector.version,
                            updated_at=_now(),
                        )
                    )
                elif row.version != slot.projector.version:
                    log.warning(
                        "projection %s was built by version %s of its projector; this is %s: "
                        "rebuild it (dianabot projections rebuild %s)",
                        slot.name,
                        row.version,
                        slot.projector.version,
                        slot.name,
                    )
                    conn.execute(
                        update(positions).where(positions.c.name == slot.key).values(state=OUTDATED)
                    )
        self._synced = False

    def _positions_table(self) -> Any:
        return self.slots[0].projector.tableset.positions

    def sync(self) -> None:
        """Adopt the positions in the database; forget cached rows someone else may have changed."""
        if not self.slots:
            return
        positions = self._positions_table()
        with self.store.read() as conn:
            rows = {
                row.name: row
                for row in conn.execute(
                    select(positions).where(positions.c.name.in_([s.key for s in self.slots]))
                )
            }
        for slot in self.slots:
            row = rows.get(slot.key)
            if row is None:
                raise RuntimeError(f"projection {slot.key} has no position row: ensure_schema()")
            if (row.position, row.generation) != (slot.position, slot.generation) or (
                not self._synced
            ):
                slot.projector.reset(complete=row.position == 0)
                slot.position, slot.generation = row.position, row.generation
            if (row.state, row.failed_position) != (slot.state, slot.failed_position):
                slot.failures = 0 if row.state != FAILED else max(slot.failures, 1)
                slot.retry_at = 0.0 if row.state != FAILED else slot.retry_at
            slot.state, slot.failed_position, slot.last_error = (
                row.state,
                row.failed_position,
                row.last_error,
            )
        self._synced = True

    def status(self) -> list[ProjectionStatus]:
        """Where each projection stands, read from the database (any process's runner)."""
        positions = self._positions_table()
        head = self.reader.head()
        with self.store.read() as conn:
            rows = {
                row.name: row
                for row in conn.execute(
                    select(positions).where(positions.c.name.in_([s.key for s in self.slots]))
                )
            }
        result = []
        for slot in self.slots:
            row = rows.get(slot.key)
            if row is None:
                result.append(ProjectionStatus(slot.name, 0, head, "missing", None, None, 0, None))
                continue
            result.append(
                ProjectionStatus(
                    slot.name,
                    row.position,
                    head,
                    row.state,
                    row.last_error,
                    row.failed_position,
                    row.generation,
                    row.updated_at,
                )
            )
        return result

    def retry_now(self) -> None:
        """Retry failed projectors at the next step (after a fix), not after their backoff."""
        for slot in self.slots:
            slot.retry_at = 0.0

    # ----- catching up ----------------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Process events until every runnable projector reaches `until` (default: the head).

        Returns the lowest position reached. Failed projectors stop before their failing event.
        """
        target = self.reader.head() if until is None else until
        self._progress = (progress, target) if progress is not None else None
        try:
            while self.step(until=target) is not None:
                pass
        finally:
            self._progress = None
        return min((s.position for s in self.slots), default=0)

    def step(self, until: int | None = None, conn: Connection | None = None) -> Batch | None:
        """One batch: read, fold and write at most `max_batch` events. None when nothing to do.

        With `conn` (an open write transaction), loads and writes use it and nothing commits
        here: the caller's transaction (a rebuild's swap) decides.
        """
        with self._step_lock:
            return self._step(until, conn)

    def _step(self, until: int | None, conn: Connection | None) -> Batch | None:
        if conn is None:
            self.sync()
        head = self.reader.head()
        target = head if until is None else min(until, head)
        now = time.monotonic()
        work: list[Slot] = []
        for slot in self.slots:
            if slot.state == OUTDATED:
                continue
            stop = target if slot.until is None else min(target, slot.until)
            if slot.state == FAILED and slot.failed_position is not None and now < slot.retry_at:
                stop = min(stop, slot.failed_position - 1)
            if slot.position < stop:
                slot.stop = stop
                slot.broken = None
                work.append(slot)
        if not work:
            return None
        start = min(s.position for s in work)
        end = min(start + self.max_batch, max(s.stop for s in work))
        batch = Batch(start, end, slots=work)
        try:
            with self._loading(conn), gc_paused():
                self._fold(batch)
            self._flush(batch, conn)
        except BaseException:
            for slot in work:
                slot.projector.reset()
            self._synced = False
            raise
        return batch

    @contextmanager
    def _loading(self, conn: Connection | None) -> Iterator[None]:
        """Lazy row loads during a fold go through one read connection (or the caller's)."""
        context = nullcontext(conn) if conn is not None else self.store.read()
        with context as read_conn:
            self._read_conn = read_conn
            try:
                yield
            finally:
                self._read_conn = None

    def _loading_connection(self) -> Connection:
        if self._read_conn is None:
            raise RuntimeError("rows can only be loaded during a runner's fold")
        return self._read_conn

    def _fold(self, batch: Batch) -> None:
        interest: dict[str, list[Slot]] = {}
        for slot in batch.slots:
            for name in slot.projector.handlers:
                interest.setdefault(name, []).append(slot)
        dispatch = {
            name: [(slot, slot.projector.handlers[name]) for slot in slots]
            for name, slots in interest.items()
        }
        # Usually every projector starts where the batch starts and may go to its end: then no
        # event needs checking against each projector's own range.
        uniform = all(s.position == batch.start and s.stop >= batch.end for s in batch.slots)
        reader = self.reader
        decode = reader.mapper.to_domain_event
        name_of = reader.name_of
        names: dict[str, str] = {}
        applied = 0
        for page in reader.pages(batch.start, batch.end, self.page_size):
            batch.read += len(page)
            decoded: list[tuple[int, str, Any]] = []
            for notification in page:
                topic = notification.topic
                name = names.get(topic)
                if name is None:
                    name = names[topic] = name_of(topic)
                if name not in interest:
                    continue
                try:
                    event = decode(notification)
                except Exception as error:  # undecodable: every projector that wanted it stops
                    for slot in interest[name]:
                        if slot.position < notification.id <= slot.stop and slot.broken is None:
                            self._break(slot, notification.id, name, notification, error)
                    continue
                decoded.append((notification.id, name, event))
            for slot in batch.slots:
                if slot.broken is None:
                    slot.projector.prefetch(decoded)
            for position, name, event in decoded:
                for slot, handler in dispatch[name]:
                    if slot.broken or not (uniform or slot.position < position <= slot.stop):
                        continue
                    try:
                        handler(event, position)
                    except Exception as error:
                        self._break(slot, position, name, event, error)
                    else:
                        applied += 1
            if self._progress is not None:
                self._progress[0](page[-1].id, self._progress[1])
            if page[-1].id < batch.end and self._too_dirty(batch):
                batch.end = page[-1].id  # write what we have; the next batch goes on from here
                break
        batch.applied += applied

    def _too_dirty(self, batch: Batch) -> bool:
        return sum(slot.projector.dirty() for slot in batch.slots) > self.max_dirty_rows

    def _break(self, slot: Slot, position: int, name: str, event: Any, error: Exception) -> None:
        where = f"{name} of {event.originator_id} v{event.originator_version} at {position}"
        slot.broken = (position, f"{where}: {type(error).__name__}: {error}")
        log.error("projection %s failed on %s: %s", slot.key, where, error, exc_info=error)

    def _flush(self, batch: Batch, conn: Connection | None) -> None:
        positions = self._positions_table()
        context = nullcontext(conn) if conn is not None else self.store.write()
        committed: list[tuple[Slot, dict[str, Any]]] = []
        with context as wconn:
            current = self._lock_positions(wconn, [s.key for s in batch.slots])
            for slot in batch.slots:
                row = current.get(slot.key)
                if row is None or (row.position, row.generation) != (
                    slot.position,
                    slot.generation,
                ):
                    log.info("projection %s moved under this runner; starting over", slot.key)
                    slot.projector.reset()
                    self._synced = False
                    continue
                values = self._outcome(slot, max(slot.position, min(batch.end, slot.stop)))
                if slot.broken is None:
                    for base, (new, changed) in slot.projector.changed_rows().items():
                        table = slot.projector.tableset[base]
                        self.store.insert(wconn, table, new)
                        key = slot.projector.rows[base].key_columns
                        self.store.upsert(wconn, table, key, changed)
                wconn.execute(
                    update(positions).where(positions.c.name == slot.key).values(**values)
                )
                committed.append((slot, values))
            if self.on_flush is not None:
                self.on_flush(wconn, batch)
        for slot, values in committed:
            slot.position = values["position"]
            slot.state = values["state"]
            slot.failed_position = values["failed_position"]
            slot.last_error = values["last_error"]
            if slot.broken is not None:
                slot.projector.reset()  # its cache holds half of the failing event
                slot.failures += 1
                slot.retry_at = time.monotonic() + min(2.0**slot.failures, MAX_RETRY_DELAY)
            else:
                slot.projector.flushed()
                slot.projector.trim(self.max_cached_rows)

    def _outcome(self, slot: Slot, reached: int) -> dict[str, Any]:
        """The position row after this batch: advanced, failed (position kept), or recovered."""
        values: dict[str, Any] = {"updated_at": _now()}
        if slot.broken is not None:
            failed_at, error = slot.broken
            values.update(
                position=slot.position,
                state=FAILED,
                failed_position=failed_at,
                last_error=error,
            )
            return values
        values["position"] = reached
        if slot.state == FAILED and slot.failed_position is not None:
            if reached >= slot.failed_position:
                values.update(state=OK, failed_position=None, last_error=None)
                slot.failures = 0
                log.info("projection %s recovered past %s", slot.key, slot.failed_position)
            else:
                values.update(
                    state=FAILED, failed_position=slot.failed_position, last_error=slot.last_error
                )
        else:
            values.update(state=slot.state, failed_position=None, last_error=None)
        return values

    def _lock_positions(self, conn: Connection, keys: list[str]) -> dict[str, Any]:
        positions = self._positions_table()
        statement = select(positions).where(positions.c.name.in_(sorted(keys)))
        if self.store.dialect == "postgresql":
            statement = statement.order_by(positions.c.name).with_for_update()
        return {row.name: row for row in conn.execute(statement)}

    # ----- live mode ------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a background thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Catch up, then follow the log until stopped. Errors are logged and retried."""
        self._waker = _Waker.for_app(self.app, self.store, self._wake)
        delay = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    batch = self.step()
                    delay = 0.0
                except Exception:
                    delay = min(max(delay * 2, 0.5), 30.0)
                    log.exception("projection batch failed; retrying in %.1f s", delay)
                    self._stopping.wait(delay)
                    continue
                if batch is None:
                    self._waker.wait(self._wait_timeout())
        finally:
            self._waker.close()
            self._waker = None

    def _wait_timeout(self) -> float:
        pending = [s.retry_at - time.monotonic() for s in self.slots if s.state == FAILED]
        timeout = self._waker.timeout(self.poll_interval) if self._waker else self.poll_interval
        return max(0.01, min([timeout, *pending]))

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until every projection that is not failed has reached `position`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.status()
            if all(s.position >= position for s in statuses if s.state not in (FAILED, OUTDATED)):
                return True
            self._wake.set()
            time.sleep(0.02)
        return False


class _Waker:
    """Wakes the live loop when events arrive; subclasses know how, the base polls."""

    def __init__(self, wake: threading.Event) -> None:
        self.wake = wake

    @staticmethod
    def for_app(app: Application[Any], store: ReadStore, wake: threading.Event) -> _Waker:
        recorder = app.recorder
        if hasattr(recorder, "listen") and hasattr(recorder, "unlisten"):
            return _MemoryWaker(wake, recorder)
        channel = getattr(recorder, "channel_name", None)
        if channel and store.dialect == "postgresql":
            return _PostgresWaker(wake, store, channel)
        return _Waker(wake)

    def timeout(self, poll_interval: float) -> float:
        return poll_interval

    def wait(self, timeout: float) -> None:
        self.wake.wait(timeout)
        self.wake.clear()

    def close(self) -> None:
        self.wake.set()


class _MemoryWaker(_Waker):
    """The in-memory event store sets registered events on every insert."""

    def __init__(self, wake: threading.Event, recorder: Any) -> None:
        super().__init__(wake)
        self.recorder = recorder
        recorder.listen(wake)

    def timeout(self, poll_interval: float) -> float:
        return 5.0

    def close(self) -> None:
        self.recorder.unlisten(self.wake)
        super().close()


class _PostgresWaker(_Waker):
    """LISTEN on the channel the event store NOTIFYs in every insert transaction.

    A dedicated connection in a thread; when it breaks, the loop falls back to polling at the
    poll interval while the listener reconnects with backoff.
    """

    SAFETY_POLL = 5.0

    def __init__(self, wake: threading.Event, store: ReadStore, channel: str) -> None:
        super().__init__(wake)
        self.store = store
        self.channel = channel
        self.healthy = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="projections-listen", daemon=True)
        self._thread.start()

    def timeout(self, poll_interval: float) -> float:
        return self.SAFETY_POLL if self.healthy else poll_interval

    def _listen(self) -> None:
        delay = 0.5
        while not self._closing.is_set():
            try:
                raw = self.store.engine.raw_connection()
                try:
                    driver = raw.driver_connection
                    driver.autocommit = True  # type: ignore[union-attr]
                    quoted = '"' + self.channel.replace('"', '""') + '"'
                    driver.execute(f"LISTEN {quoted}")  # type: ignore[union-attr]
                    self.healthy = True
                    delay = 0.5
                    self.wake.set()  # events may have arrived while not listening
                    while not self._closing.is_set():
                        for _ in driver.notifies(timeout=1.0, stop_after=1):  # type: ignore[union-attr]
                            self.wake.set()
                finally:
                    self.healthy = False
                    raw.invalidate()
            except Exception as error:
                if self._closing.is_set():
                    return
                log.warning(
                    "LISTEN %s failed (%s); polling until it reconnects", self.channel, error
                )
                self._closing.wait(delay)
                delay = min(delay * 2, 30.0)

    def close(self) -> None:
        self._closing.set()
        super().close()
        self._thread.join(5.0)


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while folding a batch.

    A fold allocates millions of short-lived, acyclic objects (notifications, events, rows) that
    reference counting frees; with large row caches alive, every generation-2 collection the
    allocations trigger re-scans those caches, which halves throughput. Cycles made meanwhile
    are collected when it resumes.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        _gc_pauses += 1
        if _gc_pauses == 1:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _now() -> datetime:
    return datetime.now(UTC)
