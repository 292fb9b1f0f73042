"""Where due snapshots go: written at once (the simple path) or by a thread of their own.

A snapshot is a cache of an aggregate's events, so nothing waits for it: with group commit the
writer thread hands snapshots to `BackgroundSnapshots` and goes on to the next batch, instead of
spending a second database round trip on each batch's critical path (docs/performance.md,
item 12). A snapshot lost to a crash only means a longer replay on the next load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

Put = Callable[[Sequence[Any]], None]


class InlineSnapshots:
    """Writes snapshots in the caller's thread, before the command returns."""

    def __init__(self, put: Put) -> None:
        self._put = put

    def add(self, snapshots: Sequence[Any]) -> None:
        try:
            self._put(snapshots)
        except Exception:  # a snapshot is an optimisation; the events are already safe
            log.exception("snapshot failed after commit")

    def flush(self, timeout: float = 30.0) -> bool:
        return True

    def close(self) -> None:
        """Nothing to stop."""


class BackgroundSnapshots:
    """Writes snapshots on its own thread, all that have queued up in one `put` each time."""

    def __init__(self, put: Put) -> None:
        self._put = put
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[Any] = []
        self._queued = 0  # snapshots ever queued
        self._done = 0  # snapshots written or given up on
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()

    def add(self, snapshots: Sequence[Any]) -> None:
        with self._changed:
            if self._closed:  # shutting down: write it here rather than lose it
                self._write(list(snapshots))
                return
            self._queue.extend(snapshots)
            self._queued += len(snapshots)
            self._changed.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every snapshot queued so far is written; False on timeout."""
        with self._changed:
            target = self._queued
            return self._changed.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._thread.join(timeout=30)
        if self._thread.is_alive():
            log.error("snapshot writer did not stop within 30 s")

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            self._write(batch)
            with self._changed:
                self._done += len(batch)
                self._changed.notify_all()

    def _write(self, batch: list[Any]) -> None:
        try:
            self._put(batch)
        except Exception:  # a snapshot is an optimisation; the events are already safe
            log.exception("snapshot failed after commit")
