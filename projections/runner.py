"""Runs projectors over the notification log: batched, tracked, isolated.

A step picks the projectors that are behind, folds one stretch of the log into them (`fold`:
each event decoded once for all of them) and writes their rows and positions in one short
transaction, guarded by the stored positions (`positions`). So:

- idempotent: rows and position commit together, and a batch only commits if the position in the
  database is still the one the batch started from;
- isolated: a projector that raises on an event is stopped just before it, marked failed with
  the event and the error, and retried with backoff; the others go on;
- observable: positions, state, last error and the failing event live in `projection_positions`,
  readable from any process (`status()`).

Following the log as it grows is `live.LiveRunner`'s job; the log itself is the `EventLog` port
(`ports`), injected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from dianabot.projections import positions
from dianabot.projections.base import Projector, sql_loader
from dianabot.projections.fold import Batch, FlushHook, Progress, flush, fold, gc_paused
from dianabot.projections.ports import EventLog
from dianabot.projections.positions import FAILED, OK, OUTDATED, ProjectionStatus, Slot
from dianabot.projections.schema import TableSet
from dianabot.projections.store import ReadStore
from sqlalchemy import Connection

log = logging.getLogger(__name__)


class ProjectionRunner:
    """Feeds a set of projectors from one notification log."""

    def __init__(
        self,
        events: EventLog,
        store: ReadStore,
        slots: list[Slot],
        *,
        page_size: int = 1000,
        max_batch: int = 5000,
        max_cached_rows: int = 200_000,
        max_dirty_rows: int = 500_000,
        pause_gc: bool = False,
        skip_undecodable: bool = False,
    ) -> None:
        self.events = events
        self.store = store
        self.slots = slots
        self.page_size = page_size
        self.max_batch = max_batch
        self.max_cached_rows = max_cached_rows
        self.max_dirty_rows = max_dirty_rows
        self.pause_gc = pause_gc
        """Fold with the garbage collector paused (shadow builds: see `fold.gc_paused`)."""
        self.undecodable: dict[int, str] | None = {} if skip_undecodable else None
        """Undecodable events skipped, by position (a tolerant replay: see `fold.fold`); None
        when such an event stops the projectors that want it (every live runner)."""
        self.on_flush: FlushHook | None = None
        """Test seam: called inside the write transaction, after rows, before commit."""
        self._progress: tuple[Progress, int] | None = None
        self._read_conn: Connection | None = None
        self._synced = False
        self._step_lock = threading.Lock()

    @classmethod
    def for_projectors(
        cls,
        events: EventLog,
        store: ReadStore,
        projector_classes: list[type[Projector]],
        *,
        suffix: str = "",
        **options: Any,
    ) -> ProjectionRunner:
        """A runner of these projectors on their live tables ('' suffix) or a shadow copy."""
        runner = cls(events, store, [], **options)
        loader = sql_loader(runner._loading_connection)
        for projector_class in projector_classes:
            projector = projector_class(TableSet(projector_class.tables, suffix), loader)
            key = projector_class.name if not suffix else f"{projector_class.name}__{suffix}"
            runner.slots.append(Slot(projector, key))
        return runner

    # ----- positions ------------------------------------------------------------------------

    def ensure_schema(self, *, state: str = OK) -> None:
        """Create missing tables and position rows (any number of processes may race here)."""
        positions.ensure_schema(self.store, self.slots, state)
        self._synced = False

    def check_schema(self) -> None:
        """Raise `positions.ReadModelsMissing` if a table or position row is missing; creates
        nothing (for uses that only read)."""
        positions.check_schema(self.store, self.slots)

    def sync(self) -> None:
        """Adopt the positions in the database; forget cached rows someone else may have changed."""
        if not self.slots:
            return
        positions.adopt(
            self.slots, positions.read_positions(self.store, self.slots), synced=self._synced
        )
        self._synced = True

    def status(self) -> list[ProjectionStatus]:
        """Where each projection stands, read from the database (any process's runner)."""
        head = self.events.head()
        rows = positions.read_positions(self.store, self.slots)
        return positions.statuses(self.slots, rows, head)

    def next_retry_in(self) -> float | None:
        """Seconds until a failed projector may be retried (None when none has failed)."""
        now = time.monotonic()
        waits = [s.retry_at - now for s in self.slots if s.state == FAILED]
        return max(0.0, min(waits)) if waits else None

    def retry_now(self) -> None:
        """Retry failed projectors at the next step (after a fix), not after their backoff."""
        for slot in self.slots:
            slot.retry_at = 0.0

    # ----- catching up ----------------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Process events until every runnable projector reaches `until` (default: the head).

        Returns the lowest position reached. Failed projectors stop before their failing event.
        """
        target = self.events.head() if until is None else until
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
        head = self.events.head()
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
            paused: AbstractContextManager[None] = gc_paused() if self.pause_gc else nullcontext()
            with self._loading(conn), paused:
                fold(
                    batch,
                    self.events,
                    self.page_size,
                    self.max_dirty_rows,
                    self._progress,
                    self.undecodable,
                )
            if not flush(
                batch,
                self.store,
                conn,
                max_cached_rows=self.max_cached_rows,
                on_flush=self.on_flush,
            ):
                self._synced = False
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
