"""Live mode: follow the log as it grows, in a background thread.

The loop steps its runner (the projectors', or the policies': any `Follower`) until nothing is
left, then waits on the log's `Waker` (pushed by PostgreSQL's LISTEN/NOTIFY or the in-memory
store's signal, polled on SQLite) for new events, a held-back subscriber's retry time, or
`stop()`. Errors are logged and retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from dianabot.projections.ports import EventLog, Waker
from dianabot.projections.positions import FAILED, OUTDATED

log = logging.getLogger(__name__)

HELD_BACK = frozenset({FAILED, OUTDATED, "retrying"})
"""States of a subscriber that is not expected to move (`wait_for` does not wait for it)."""


class Standing(Protocol):
    @property
    def position(self) -> int: ...
    @property
    def state(self) -> str: ...


class Follower(Protocol):
    """A runner the loop can drive: `ProjectionRunner` or `subscriptions.PolicyRunner`."""

    @property
    def events(self) -> EventLog: ...

    def step(self) -> object | None:
        """Do one batch; None when there is nothing to do now."""
        ...

    def next_retry_in(self) -> float | None:
        """Seconds until a held-back subscriber may be retried (None when none is)."""
        ...

    def status(self) -> Sequence[Standing]: ...


class LiveRunner:
    """Keeps one runner's subscribers at the head of the log until stopped."""

    def __init__(
        self, runner: Follower, *, poll_interval: float = 0.25, name: str = "projections"
    ) -> None:
        self.runner = runner
        self.name = name
        self.poll_interval = poll_interval
        """How often to look for new events when the store cannot push them."""
        self.waker: Waker | None = None
        """The running loop's waker (None when not running)."""
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Run in a background thread until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the batch in progress; False if the thread did not end within `timeout`
        (it is left to finish that batch, whose transaction commits whole or not at all)."""
        self._stopping.set()
        self._nudge()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s: the batch in progress did not end within %.0f s", self.name, timeout)
            return False
        return True

    @property
    def stopping(self) -> threading.Event:
        """Set from `stop()` until the next `start()`: a runner whose batch is long may look at
        it between events and end its batch early (`subscriptions.PolicyRunner.halt`)."""
        return self._stopping

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Catch up, then follow the log until stopped. Errors are logged and retried."""
        waker = self.waker = self.runner.events.waker()
        delay = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    batch = self.runner.step()
                    delay = 0.0
                except Exception:
                    delay = min(max(delay * 2, 0.5), 30.0)
                    log.exception("%s batch failed; retrying in %.1f s", self.name, delay)
                    self._stopping.wait(delay)
                    continue
                if batch is None:
                    waker.wait(self._wait_timeout(waker))
        finally:
            waker.close()
            self.waker = None

    def _wait_timeout(self, waker: Waker) -> float:
        retry = self.runner.next_retry_in()
        pending = [] if retry is None else [retry]
        return max(0.01, min([waker.patience(self.poll_interval), *pending]))

    def _nudge(self) -> None:
        waker = self.waker
        if waker is not None:
            waker.wake()

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until every subscriber that is not held back has reached `position`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.runner.status()
            if all(s.position >= position for s in statuses if s.state not in HELD_BACK):
                return True
            self._nudge()
            time.sleep(0.02)
        return False
