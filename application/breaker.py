"""A circuit breaker around the event store: while it is down, commands fail fast.

Without it, every command waits out the connection pool's timeout on its own, and the
group-commit writer, which runs commands one batch after another, makes them wait in turn: with
80 callers and PostgreSQL stopped for 20 s, nobody heard `unavailable`, and all were blocked
until 8 s after the server was back (issue 11, item 8).

Closed (the normal state): commands go to the store. The first command to meet a dropped
connection trips it open: from then on commands are answered `unavailable` at once, without
touching the store, and ONE probe thread checks the store every `interval` (the store's
`replace_broken_connections`, which raises while it cannot be reached and, once it can, makes
sure the pool hands out working connections: the pool's own reconnection backs off to many
seconds after a long outage). The first probe that succeeds closes the breaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 0.2
"""How often the probe checks a store that is down: recovery is noticed within this (plus the
probe's own connection time)."""


class StoreUnavailable(PersistenceError):
    """The event store is known to be down (the breaker is open): not tried."""


CONNECTION_ERRORS = (OperationalError, InterfaceError)
"""What a dropped or refused connection raises (a pool timeout too)."""


class StoreBreaker:
    """See the module docstring. `probe` raises while the store cannot be used."""

    def __init__(self, probe: Callable[[], None], interval: float = PROBE_INTERVAL_SECONDS) -> None:
        self._probe = probe
        self._interval = interval
        self._changed = threading.Condition(threading.Lock())
        self._open = False
        self._reason = ""
        self._opened_at = 0.0
        self._probes = 0  # probes finished so far (a waiter waits for the next verdict)
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    def check(self) -> None:
        """Raise `StoreUnavailable` while the breaker is open."""
        if self._open:
            raise StoreUnavailable(f"the event store is unavailable: {self._reason}")

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around work that uses the store: refused at once while open; trips the breaker on a
        connection failure (which propagates)."""
        self.check()
        try:
            yield
        except CONNECTION_ERRORS as error:
            self.trip(error)
            raise

    def trip(self, error: BaseException) -> None:
        """Open the breaker (if closed) and start probing the store."""
        with self._changed:
            if self._open or self._stopped:
                return
            self._open = True
            self._reason = (
                str(error).strip().splitlines()[0] if str(error).strip() else (type(error).__name__)
            )
            self._opened_at = time.monotonic()
            self._thread = threading.Thread(target=self._probing, name="store-probe", daemon=True)
            self._thread.start()
        log.error(
            "event store unavailable (%s): commands are refused until it answers", self._reason
        )

    def wait_for_verdict(self, timeout: float) -> bool:
        """Wait (at most `timeout`) for the next probe's verdict; True if the store answers."""
        deadline = time.monotonic() + timeout
        with self._changed:
            seen = self._probes
            while self._open and self._probes == seen and not self._stopped:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return not self._open

    def close(self) -> None:
        """Stop probing (the application is closing)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _probing(self) -> None:
        failures = 0
        while True:
            try:
                self._probe()
            except Exception as error:  # still down: say so once in a while, not every probe
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning("event store still unavailable: %s", error)
                answered = False
            else:
                answered = True
            with self._changed:
                self._probes += 1
                if answered:
                    self._open = False
                    down = time.monotonic() - self._opened_at
                if answered or self._stopped:
                    self._changed.notify_all()
                    break
                self._changed.notify_all()
                self._changed.wait(self._interval)
                if self._stopped:
                    return
        if answered:
            log.warning("event store answers again; commands resume (down %.1f s)", down)
