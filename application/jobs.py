"""Time-driven work: jobs the workers run every few seconds or minutes, on a thread of their own.

- `ExpireVips` (every `vip_expiry_interval`, default 5 s): `VipExpired` for every VIP period that
  has ended (`application.vip`, `expire_due_vips`), so an expiry is recorded within about one
  interval after the period's end. Once: the `ExpireVip` command refuses a period already
  expired, and its causation names the player and the period's end, so a second run, a restart
  or a second process running the job records nothing more. Durable: what is due is read from
  the history, not from memory.
- `PruneSnapshots` (every `snapshot_prune_interval`, default 10 min): deletes each aggregate's
  snapshots but the latest `snapshots_keep` (default 3). Snapshots are derived data (never
  events); the store does the deleting behind the `SnapshotPruner` port
  (`adapters.eventstore.snapshots`).

`Jobs` runs them: each when due, one at a time, on one thread; a job that raises is logged and
counted and runs again at its next time. `run_due()` runs what is due now in the caller's
thread (tests, a one-off run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

OK = "ok"
ERROR = "error"


class SnapshotPruner(Protocol):
    """The snapshot store, as the pruning job needs it."""

    def prune(self, keep: int) -> int:
        """Delete every aggregate's snapshots but its latest `keep`; the number deleted."""
        ...


class Job(Protocol):
    name: str
    interval: float
    """Seconds between the end of one run and the start of the next."""

    def run(self) -> str:
        """Do the work once; a one-line summary. Raises when it could not be done."""
        ...


class JobFailed(RuntimeError):
    """A run that did part of its work and could not do the rest (the summary says what)."""


class VipExpirer(Protocol):
    def expire_due_vips(self) -> Any: ...


class ExpireVips:
    name = "vip-expiry"

    def __init__(self, app: VipExpirer, interval: float = 5.0) -> None:
        self.app = app
        self.interval = interval

    def run(self) -> str:
        outcome = self.app.expire_due_vips()
        summary = f"{len(outcome.expired)} expired, {outcome.watching} VIP member(s) watched"
        if outcome.failed:
            failed = ", ".join(f"{user}: {code}" for user, code in sorted(outcome.failed.items()))
            raise JobFailed(f"{summary}; could not expire {failed}")
        return summary


class PruneSnapshots:
    name = "snapshot-pruning"

    def __init__(self, pruner: SnapshotPruner, keep: int = 3, interval: float = 600.0) -> None:
        self.pruner = pruner
        self.keep = keep
        self.interval = interval

    def run(self) -> str:
        deleted = self.pruner.prune(self.keep)
        if deleted:
            log.info("pruned %d old snapshot(s), keeping the latest %d each", deleted, self.keep)
        return f"{deleted} snapshot(s) deleted"


@dataclass
class JobStatus:
    name: str
    interval: float
    runs: int = 0
    failures: int = 0
    last_result: str | None = None
    last_error: str | None = None
    last_finished: float | None = None
    """Wall-clock time (seconds since the epoch) the last run ended."""
    last_success: float | None = None
    last_seconds: float | None = None
    due: float = 0.0
    """Monotonic time of the next run."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "interval": self.interval,
            "runs": self.runs,
            "failures": self.failures,
            "last_result": self.last_result,
            "last_error": self.last_error,
            "last_finished": self.last_finished,
            "last_success": self.last_success,
            "last_seconds": self.last_seconds,
        }


class Jobs:
    """Runs jobs when due, on one thread (see the module docstring)."""

    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = list(jobs)
        self.clock = clock
        self.wall_clock = wall_clock
        self._status = {job.name: JobStatus(job.name, job.interval) for job in self.jobs}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(job.name for job in self.jobs)

    def status(self) -> list[JobStatus]:
        with self._lock:
            return [JobStatus(**vars(s)) for s in self._status.values()]

    def run_due(self, stopping: threading.Event | None = None) -> int:
        """Run every job that is due now (until `stopping` is set); the number run."""
        ran = 0
        for job in self.jobs:
            if stopping is not None and stopping.is_set():
                break
            status = self._status[job.name]
            if self.clock() >= status.due:
                self._run(job, status)
                ran += 1
        return ran

    def _run(self, job: Job, status: JobStatus) -> None:
        started = self.clock()
        try:
            result = job.run()
        except Exception as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            message = f"{type(error).__name__}: {text}" if text else type(error).__name__
            log.error("job %s failed: %s", job.name, message, exc_info=log.isEnabledFor(10))
            with self._lock:
                status.failures += 1
                status.last_error = message
                status.last_result = None
        else:
            log.debug("job %s: %s", job.name, result)
            with self._lock:
                status.last_result = result
                status.last_error = None
                status.last_success = self.wall_clock()
        finished = self.clock()
        with self._lock:
            status.runs += 1
            status.last_seconds = finished - started
            status.last_finished = self.wall_clock()
            status.due = finished + job.interval

    # ----- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        """Run the jobs on a thread until `stop()`: each at once, then every interval."""
        if self.running:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the job in progress (if any); False if it did not end within `timeout`."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("a job was still running after %.0f s; abandoned", timeout)
            return False
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_due(self._stopping)
            except Exception:  # a bug in the loop itself: keep the thread alive
                log.exception("jobs loop failed")
            with self._lock:
                next_due = min((s.due for s in self._status.values()), default=None)
            wait = 1.0 if next_due is None else max(0.01, next_due - self.clock())
            self._stopping.wait(wait)
