"""Group commit: concurrent commands decided and saved together, one transaction per batch.

Commands arrive from many threads (one per Telegram update being handled). Each hands its
*attempt* (decide: load aggregates, call their methods, return those to save) to the one writer
thread and waits for its own outcome. The writer takes what has queued (up to `max_batch`), runs
the attempts one after another, and records all their events with a single insert. If that
combined transaction fails on an integrity conflict, the writer records the commands one by one,
so a conflict in one command never fails another. Per-user ordering comes from the caller
holding that user's lock until its outcome returns, so a batch never holds two changes to one
user, and a user's commands are written in the order they ran.

Why the writer runs the decisions too (flat combining) instead of each caller deciding in its
own thread: under the GIL only one thread runs Python at a time, and 32 deciding threads spend
much of their time handing the GIL to each other; worse, the writer, back from each database
round trip, queued for the GIL behind all of them (waiting ten times longer than the statement
took; docs/performance.md, item 9). Deciding on the writer thread costs the same CPU without the
hand-offs, and the callers only wake to queue their next command while the writer waits on the
database. Measured on the write-side benchmark: see docs/performance.md.

The writer does one thing at a time: decide a batch, write it, settle its commands. Keeping one
transaction in flight while deciding the next batch was built and measured: 30 paired runs gave
no gain beyond the noise (docs/performance.md), so it was removed.

A decision that itself issues a command (none does today) runs inline rather than queueing
behind itself.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from dianabot.application.ports import Write
from eventsourcing.persistence import IntegrityError, Recording, StoredEvent, Tracking

log = logging.getLogger(__name__)

Attempt = Callable[[], Sequence[Any]]
"""Runs one command's decision; returns the aggregates whose pending events are to be saved."""
Record = Callable[[Write], list[Recording[Any]]]
Prepare = Callable[[Write], None]


def _nothing(write: Write) -> None:
    """No preparation."""


def collect(aggregates: Sequence[Any]) -> Write:
    """The aggregates' pending events as one write (what the library's
    `ProcessingEvent.collect_events` does for aggregates, without its runtime protocol checks:
    tens of microseconds per command on the hot path)."""
    processing = Write()
    for aggregate in aggregates:
        processing.events.extend(aggregate.collect_events())
        processing.aggregates[aggregate.id] = aggregate
    return processing


class _Pending:
    """One command waiting for the writer: a pre-acquired lock is its signal (cheaper than a
    Future, whose condition variable costs a few microseconds more on every command)."""

    __slots__ = ("attempt", "write", "_settled", "_recordings", "_error")

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.write = Write()
        self._settled = threading.Lock()
        self._settled.acquire()
        self._recordings: list[Recording[Any]] = []
        self._error: BaseException | None = None

    def succeed(self, recordings: list[Recording[Any]]) -> None:
        self._recordings = recordings
        self._settled.release()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._settled.release()

    def outcome(self) -> list[Recording[Any]]:
        """Blocks until the writer settles this command; raises what its attempt or commit
        raised."""
        self._settled.acquire()
        if self._error is not None:
            raise self._error
        return self._recordings


Notify = Callable[[list[Recording[Any]] | None, BaseException | None], None]
"""Told a submitted command's outcome, on the writer's thread: (recordings, None) or
(None, the error its attempt or commit raised)."""


class _Notifying(_Pending):
    """A command whose caller does not wait on a lock but is told (`GroupCommitWriter.submit`)."""

    __slots__ = ("_notify",)

    def __init__(self, attempt: Attempt, notify: Notify) -> None:  # no lock to pre-acquire
        self.attempt = attempt
        self.write = Write()
        self._notify = notify

    def succeed(self, recordings: list[Recording[Any]]) -> None:
        self._notify(recordings, None)

    def fail(self, error: BaseException) -> None:
        self._notify(None, error)


def merged(batch: Sequence[_Pending]) -> Write:
    combined = Write()
    stored: list[StoredEvent] | None = []
    for pending in batch:
        write = pending.write
        combined.events.extend(write.events)
        combined.aggregates.update(write.aggregates)
        if stored is not None and write.stored_events is not None:
            stored.extend(write.stored_events)
        else:
            stored = None
    combined.stored_events = stored
    return combined


class DirectWriter:
    """Runs each command in its caller's thread and records it in its own transaction (the
    simple, default path)."""

    def __init__(self, record: Record, prepare: Prepare = _nothing) -> None:
        self._record = record
        self._prepare = prepare

    def run(self, attempt: Attempt, tracking: Tracking | None = None) -> list[Recording[Any]]:
        return self.commit(attempt(), tracking)

    def commit(
        self, aggregates: Sequence[Any], tracking: Tracking | None = None
    ) -> list[Recording[Any]]:
        """Save the aggregates' events in one transaction, with `tracking` if given (then the
        transaction is written even without events: it moves a subscriber's position)."""
        write = collect(aggregates)
        write.tracking = tracking
        if not write.events and tracking is None:
            return []
        if write.events:
            self._prepare(write)
        return self._record(write)

    def close(self) -> None:
        """Nothing to stop."""


class GroupCommitWriter:
    """Decides and commits queued commands in batches on one thread (see module docstring).

    `record` writes one transaction (and whatever must follow it before the commands hear of
    it, such as snapshots); `prepare` turns a command's events into rows.
    """

    def __init__(
        self,
        record: Record,
        max_batch: int = 32,
        prepare: Prepare = _nothing,
    ) -> None:
        self._record = record
        self._prepare = prepare
        self._inline = DirectWriter(record, prepare)
        self._max_batch = max(1, max_batch)
        self._changed = threading.Condition(threading.Lock())
        self._queue: deque[_Pending] = deque()
        self._closed = False
        self.batches = 0
        self.commands = 0
        self.failed_batches = 0
        """Batches whose transaction failed (each then re-recorded one by one, or failed)."""
        self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self._thread.start()

    def run(self, attempt: Attempt) -> list[Recording[Any]]:
        """Queue a command's attempt for the next batch and wait for its own outcome."""
        if threading.current_thread() is self._thread:
            return self._inline.run(attempt)
        pending = _Pending(attempt)
        self._enqueue(pending)
        return pending.outcome()

    def submit(self, attempt: Attempt, notify: Notify) -> None:
        """Queue a command's attempt without waiting: `notify` is told its outcome, on the
        writer's thread (so it must only hand the outcome over, as to an event loop)."""
        self._enqueue(_Notifying(attempt, notify))

    def _enqueue(self, pending: _Pending) -> None:
        with self._changed:
            if self._closed:
                raise RuntimeError("the group-commit writer is closed")
            self._queue.append(pending)
            if len(self._queue) == 1:  # the writer may be waiting for work
                self._changed.notify()

    def commit(self, aggregates: Sequence[Any]) -> list[Recording[Any]]:
        """Save aggregates already decided, with the next batch."""
        return self.run(lambda: aggregates)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.error("group-commit writer did not stop within 30 s")

    @property
    def closed(self) -> bool:
        return self._closed and not self._thread.is_alive()

    def _next_batch(self) -> list[_Pending] | None:
        """What has queued, up to `max_batch`, once there is something; None once closed and
        drained."""
        with self._changed:
            while not self._queue:
                if self._closed:
                    return None
                self._changed.wait()
            count = min(len(self._queue), self._max_batch)
            return [self._queue.popleft() for _ in range(count)]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            ready = [pending for pending in batch if self._decide(pending)]
            if ready:
                self.batches += 1
                self.commands += len(ready)
                self._commit(ready)

    def _commit(self, batch: list[_Pending]) -> None:
        """Writes the batch in one transaction and settles every command in it."""
        try:
            recordings = self._record(batch[0].write if len(batch) == 1 else merged(batch))
        except BaseException as error:
            self._failed(batch, error)
            return
        start = 0
        for pending in batch:
            count = len(pending.write.events)
            pending.succeed(recordings[start : start + count])
            start += count

    def _failed(self, batch: list[_Pending], error: BaseException) -> None:
        """A batch's transaction failed (so none of it was written). On an integrity conflict
        its commands are recorded one by one, so one command's conflict fails only that one."""
        self.failed_batches += 1
        if isinstance(error, IntegrityError) and len(batch) > 1:
            log.info("group commit conflict; recording %d commands one by one", len(batch))
            for pending in batch:
                self._settle(pending)
            return
        for pending in batch:  # every waiting command must hear about the failure
            pending.fail(error)

    def _decide(self, pending: _Pending) -> bool:
        """Runs the command's attempt; False if it is already settled (refused, nothing to
        save, or failed)."""
        try:
            write = collect(pending.attempt())
            if write.events:
                self._prepare(write)
        except BaseException as error:  # the caller turns it into its result
            pending.fail(error)
            return False
        if not write.events:
            pending.succeed([])
            return False
        pending.write = write
        return True

    def _settle(self, pending: _Pending) -> None:
        try:
            recordings = self._record(pending.write)
        except BaseException as error:
            pending.fail(error)
            return
        pending.succeed(recordings)
