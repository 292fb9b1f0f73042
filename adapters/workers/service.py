"""The workers of one store: projectors, policies and time-driven jobs, held by one process.

`Workers(services, settings).start()` serves `/healthz` and `/metrics` at once and tries to
take the store's workers lock (`adapters.eventstore.leadership`): the process that gets it
runs the projectors (`services.projections`), the policies (`services.policies`) and the jobs
(`application.jobs`: VIP expiry, snapshot pruning); the others stand by and try again every
`workers_standby_retry` seconds, so one of them takes over within that time once the holder
dies. A holder that loses the lock (its PostgreSQL session broke) stops its runners and stands
by too. `stop()` stops taking new batches, lets the batch in flight end (each commits whole or
not at all: rows and positions, effects and tracking records share transactions) for at most
`workers_stop_timeout` seconds, releases the lock and stops serving.

`dianabot workers` is a thin shell around this; the bot runs the same object in its process.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from dianabot.adapters.bootstrap import Services
from dianabot.adapters.eventstore.database import DatabaseUnavailable
from dianabot.adapters.eventstore.leadership import LeaderLock, leader_lock
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.eventstore.probe import Probe, store_probe
from dianabot.adapters.eventstore.snapshots import snapshot_pruner
from dianabot.adapters.settings import Settings
from dianabot.adapters.workers.http import HealthServer
from dianabot.adapters.workers.metrics import WorkerMetrics
from dianabot.application.jobs import ExpireVips, Job, Jobs, PruneSnapshots

log = logging.getLogger(__name__)

LEADER = "leader"
STANDBY = "standby"
STOPPED = "stopped"

LOCK_CHECK_SECONDS = 2.0
"""How often the holder makes sure it still holds the lock."""


def default_jobs(services: Services, settings: Settings) -> Jobs:
    """VIP expiry and, when the store keeps snapshots, their pruning."""
    jobs: list[Job] = [ExpireVips(services.app, settings.vip_expiry_interval)]
    pruner = snapshot_pruner(services.app)
    if pruner is not None:
        jobs.append(
            PruneSnapshots(pruner, settings.snapshots_keep, settings.snapshot_prune_interval)
        )
    return Jobs(jobs)


class Workers:
    def __init__(
        self,
        services: Services,
        settings: Settings | None = None,
        *,
        lock: LeaderLock | None = None,
        probe: Probe | None = None,
        jobs: Jobs | None = None,
        serve: bool = True,
    ) -> None:
        self.services = services
        self.settings = settings or services.settings
        self.lock = lock or leader_lock(services.database)
        self.probe = probe or store_probe(services.database)
        self.jobs = jobs or default_jobs(services, self.settings)
        self.events = event_log(services.app)
        self.metrics = WorkerMetrics(self)
        self.http: HealthServer | None = None
        self._serve = serve
        self.role = STOPPED
        self._forget_observer: Any = None
        self._transition = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._told_standby = False

    # ----- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Serve /healthz and /metrics, then take the workers or stand by (known on return).
        Raises `OSError` if the port cannot be bound."""
        if self._thread is not None:
            return
        if self._serve:
            self.http = HealthServer(
                self.settings.workers_host,
                self.settings.workers_port,
                self.health,
                self.metrics.exposition,
            )
            self.http.start()
            log.info("workers: serving %s/healthz and %s/metrics", self.http.url, self.http.url)
        self._forget_observer = self.services.app.bus.observe(self.metrics.command_observed)
        self._stopping.clear()
        self.role = STANDBY
        self._try_to_lead()
        self._thread = threading.Thread(target=self._watch, name="workers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop (see the module docstring); False if a batch in flight did not end in time."""
        timeout = self.settings.workers_stop_timeout if timeout is None else timeout
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        clean = self._step_down(timeout, "stopping")
        self.role = STOPPED
        if self._forget_observer is not None:
            self._forget_observer()
            self._forget_observer = None
        if self.http is not None:
            self.http.stop()
            self.http = None
        return clean

    def __enter__(self) -> Workers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    @property
    def port(self) -> int | None:
        return None if self.http is None else self.http.port

    # ----- leadership -----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.is_set():
            if self.role == LEADER:
                if not self.lock.held():
                    self._step_down(self.settings.workers_stop_timeout, "lost the workers lock")
                    self._stopping.wait(self.settings.workers_standby_retry)
                    continue
                self._stopping.wait(min(LOCK_CHECK_SECONDS, self.settings.workers_standby_retry))
            elif not self._try_to_lead():
                self._stopping.wait(self.settings.workers_standby_retry)

    def _try_to_lead(self) -> bool:
        with self._transition:
            if self._stopping.is_set():
                return False
            try:
                taken = self.lock.acquire()
            except Exception:
                log.exception("workers: could not ask for the workers lock")
                taken = False
            if not taken:
                if not self._told_standby:
                    holder = self.lock.holder()
                    log.info(
                        "workers: standing by; another process holds the workers (%s%s); "
                        "trying again every %.1f s",
                        self.lock.description,
                        f", {holder}" if holder else "",
                        self.settings.workers_standby_retry,
                    )
                    self._told_standby = True
                self.role = STANDBY
                return False
            self._told_standby = False
            log.info("workers: holding the workers (%s); running %s", self.lock.description,
                     ", ".join(self._parts()))  # fmt: skip
            if self.services.projections is not None:
                self.services.projections.start()
            if self.services.policies is not None:
                self.services.policies.start()
            self.jobs.start()
            self.role = LEADER  # once its runners run: /healthz never says leader without them
            return True

    def _step_down(self, timeout: float, why: str) -> bool:
        """Stop the runners (each after its batch in flight) and release the lock."""
        with self._transition:
            if self.role != LEADER:
                self.lock.release()
                return True
            # All at once: each ends its batch in flight (and a PostgreSQL listener its wait).
            stops = [live.stop for live in self._live_runners()] + [self.jobs.stop]
            outcomes: list[bool] = []
            threads = [
                threading.Thread(target=lambda stop=stop: outcomes.append(stop(timeout)))
                for stop in stops
            ]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + timeout + 1.0
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            clean = len(outcomes) == len(stops) and all(outcomes)
            self.lock.release()
            self.role = STANDBY
            log.info("workers: %s; runners stopped%s", why, "" if clean else " (some abandoned)")
            return clean

    def _live_runners(self) -> list[Any]:
        runners = []
        if self.services.policies is not None:
            runners.append(self.services.policies.live)
        if self.services.projections is not None:
            runners.append(self.services.projections.live)
        return runners

    def _parts(self) -> list[str]:
        parts = []
        if self.services.projections is not None:
            parts.append(f"{len(self.services.projections.names)} projections")
        if self.services.policies is not None:
            parts.append(f"{len(self.services.policies.names)} policies")
        parts.append(f"jobs ({', '.join(self.jobs.names)})")
        return parts

    # ----- health ---------------------------------------------------------------------------

    def store_answers(self) -> tuple[bool, dict[str, Any]]:
        try:
            seconds = self.probe()
        except DatabaseUnavailable as error:
            return False, {"ok": False, "error": str(error)}
        except Exception as error:  # a probe that fails in an unexpected way: not healthy
            return False, {"ok": False, "error": f"{type(error).__name__}: {error}"}
        return True, {"ok": True, "latency_ms": round(seconds * 1000, 2)}

    def head(self) -> int:
        return self.events.head()

    def threads(self) -> dict[str, bool]:
        """Which of this process's threads run (the runners only while holding the workers)."""
        alive = {"workers": self._thread is not None and self._thread.is_alive()}
        if self.role == LEADER:
            if self.services.projections is not None:
                alive["projections"] = self.services.projections.live.running
            if self.services.policies is not None:
                alive["policies"] = self.services.policies.live.running
            alive["jobs"] = self.jobs.running
        return alive

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy: the store answers and this process's threads run (a standby is healthy:
        it has nothing to run until it takes over)."""
        store_ok, store = self.store_answers()
        threads = self.threads()
        ok = store_ok and self.role != STOPPED and all(threads.values())
        body: dict[str, Any] = {
            "status": "ok" if ok else "failing",
            "role": self.role,
            "lock": self.lock.description,
            "store": store,
            "threads": threads,
        }
        if self.role == STANDBY:
            body["holder"] = self.lock.holder()
        return ok, body
