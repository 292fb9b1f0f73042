"""Live mode: follow the log as it grows, in a background thread.

The loop steps its runner until nothing is left, then waits on the log's `Waker` (pushed by
PostgreSQL's LISTEN/NOTIFY or the in-memory store's signal, polled on SQLite) for new events, a
failed projector's retry time, or `stop()`. Errors are logged and retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time

from dianabot.projections.ports import Waker
from dianabot.projections.positions import FAILED, OUTDATED
from dianabot.projections.runner import ProjectionRunner

log = logging.getLogger(__name__)


class LiveRunner:
    """Keeps one runner's projections at the head of the log until stopped."""

    def __init__(self, runner: ProjectionRunner, *, poll_interval: float = 0.25) -> None:
        self.runner = runner
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
        self._thread = threading.Thread(target=self.run, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._nudge()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

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
                    log.exception("projection batch failed; retrying in %.1f s", delay)
                    self._stopping.wait(delay)
                    continue
                if batch is None:
                    waker.wait(self._wait_timeout(waker))
        finally:
            waker.close()
            self.waker = None

    def _wait_timeout(self, waker: Waker) -> float:
        now = time.monotonic()
        pending = [s.retry_at - now for s in self.runner.slots if s.state == FAILED]
        return max(0.01, min([waker.patience(self.poll_interval), *pending]))

    def _nudge(self) -> None:
        waker = self.waker
        if waker is not None:
            waker.wake()

    def wait_for(self, position: int, timeout: float = 10.0) -> bool:
        """Block until every projection that is not failed has reached `position`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = self.runner.status()
            if all(s.position >= position for s in statuses if s.state not in (FAILED, OUTDATED)):
                return True
            self._nudge()
            time.sleep(0.02)
        return False
