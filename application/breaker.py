"""A circuit breaker around the event store: while it is down, commands fail fast.

Without it, every command waits out the connection pool's timeout on its own, and the
group-commit writer, which runs commands one batch after another, makes them wait in turn: with
80 callers and PostgreSQL stopped for 20 s, nobody heard `unavailable`, and all were blocked
until 8 s after the server was back (issue 11, item 8).

Closed (the normal state): commands go to the store. A command that meets a dropped connection
asks the store at once, with the probe (the store's `replace_broken_connections`, which raises
while the store cannot be reached and, once it can, makes sure the pool hands out working
connections: the pool's own reconnection backs off to many seconds after a long outage). If the
store answers (a restarted server, a store without a pool), nothing opens and the command is
retried. If not, the breaker opens: from then on commands are answered `unavailable` at once,
without touching the store, and ONE probe thread checks the store every `interval`; the first
probe that succeeds closes the breaker. Probes never run two at a time.
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
        self._probing_now = threading.Lock()  # one probe at a time
        self._open = False
        self._reason = ""
        self._opened_at = 0.0
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

    def trip(self, error: BaseException) -> bool:
        """A connection failed: ask the store now (one probe at a time). True if it answers
        (a restarted server: the probe has repaired the pool; a store without a pool); if it
        does not, open the breaker and keep probing in the background."""
        if self._open or self._stopped:
            return False
        with self._probing_now:
            if self._open or self._stopped:
                return False
            try:
                self._probe()
            except Exception as down:
                reason = _first_line(down)
            else:
                return True
            with self._changed:
                self._open = True
                self._reason = reason
                self._opened_at = time.monotonic()
                self._thread = threading.Thread(
                    target=self._probing, name="store-probe", daemon=True
                )
                self._thread.start()
        log.error(
            "event store unavailable (%s; %s): commands are refused until it answers",
            _first_line(error),
            reason,
        )
        return False

    def close(self) -> None:
        """Stop probing (the application is closing)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _probing(self) -> None:
        """The background probe: every `interval`, until the store answers (or closing)."""
        failures = 0
        while True:
            with self._changed:
                self._changed.wait(self._interval)
                if self._stopped:
                    return
            try:
                with self._probing_now:
                    self._probe()
            except Exception as error:  # still down: say so once in a while, not every probe
                failures += 1
                if failures % 50 == 0:
                    log.warning("event store still unavailable: %s", _first_line(error))
                continue
            with self._changed:
                self._open = False
                down = time.monotonic() - self._opened_at
            log.warning("event store answers again; commands resume (down %.1f s)", down)
            return


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
