"""How a live loop learns that events were written (`projections.ports.Waker`).

- `PollingWaker` (SQLite): nothing pushes; the loop polls at its poll interval.
- `SignalWaker` (memory): the in-memory recorder sets every registered `threading.Event` on
  each insert (its public `listen`/`unlisten`).
- `ListenWaker` (PostgreSQL): LISTEN on the channel the recorder NOTIFYs in every insert
  transaction, on a dedicated connection in a thread; while that connection is down the loop
  polls at its poll interval and the listener reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from eventsourcing.popo import POPOApplicationRecorder
from psycopg import sql

log = logging.getLogger(__name__)


class PollingWaker:
    """Waits out the timeout unless woken: polling."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def wait(self, timeout: float) -> None:
        self.event.wait(timeout)
        self.event.clear()

    def wake(self) -> None:
        self.event.set()

    def patience(self, poll_interval: float) -> float:
        return poll_interval

    def close(self) -> None:
        self.event.set()


class SignalWaker(PollingWaker):
    """The in-memory recorder signals every insert (`recorder.listen(event)`)."""

    PATIENCE = 5.0

    def __init__(self, recorder: POPOApplicationRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        recorder.listen(self.event)

    def patience(self, poll_interval: float) -> float:
        return self.PATIENCE

    def close(self) -> None:
        self.recorder.unlisten(self.event)
        super().close()


class ListenWaker(PollingWaker):
    """LISTEN on the channel the PostgreSQL recorder NOTIFYs on every insert."""

    SAFETY_POLL = 5.0

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channel: str) -> None:
        super().__init__()
        self.connect = connect
        self.channel = channel
        self.healthy = False
        """True while LISTEN is in place (tests wait for it)."""
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="projections-listen", daemon=True)
        self._thread.start()

    def patience(self, poll_interval: float) -> float:
        return self.SAFETY_POLL if self.healthy else poll_interval

    def _listen(self) -> None:
        delay = 0.5
        while not self._closing.is_set():
            try:
                with self.connect() as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    delay = 0.5
                    self.event.set()  # events may have arrived while not listening
                    self.healthy = True
                    try:
                        while not self._closing.is_set():
                            for _ in conn.notifies(timeout=1.0, stop_after=1):
                                self.event.set()
                    finally:
                        self.healthy = False
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
