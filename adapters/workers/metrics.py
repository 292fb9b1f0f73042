"""Prometheus metrics of the workers, in a registry of their own (not the global default).

Counted as they happen (a bus observer: `application.bus.CommandBus.observe`):
- `dianabot_commands_total{command, outcome}`: commands this process handled, by result;
- `dianabot_events_appended_total`: events this process's commands recorded.

Read when scraped (any process's positions, as stored; counts of this process's runners):
- `dianabot_event_log_head`: the last position of the notification log;
- `dianabot_projection_position{projection}`, `dianabot_projection_lag{projection}`,
  `dianabot_projection_failed{projection}` (1 when stopped on an event);
- `dianabot_policy_position{policy}`, `dianabot_policy_lag{policy}`,
  `dianabot_policy_retrying{policy}` (1 while held back before an event);
- `dianabot_policy_parked_events_total{policy}`: events this process's runner parked;
- `dianabot_subscriber_errors_total{kind, subscriber}`: failures of a projector or a policy on
  an event (each attempt), in this process;
- `dianabot_job_runs_total{job, result}`, `dianabot_job_last_success_timestamp_seconds{job}`;
- `dianabot_workers_leader` (1 in the process holding the workers), `dianabot_store_up`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from dianabot.application.commands import Command
from dianabot.application.results import CommandResult
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from dianabot.adapters.workers.service import Workers

log = logging.getLogger(__name__)


class WorkerMetrics:
    def __init__(self, workers: Workers) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commands = Counter(
            "dianabot_commands",
            "Commands handled by this process, by command and result",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.events_appended = Counter(
            "dianabot_events_appended",
            "Events recorded by this process's commands",
            registry=self.registry,
        )
        self.registry.register(_StateCollector(workers))

    def command_observed(self, command: Command, result: CommandResult, seconds: float) -> None:
        self.commands.labels(type(command).__name__, result.outcome).inc()
        if result.events:
            self.events_appended.inc(len(result.events))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector(Collector):
    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        for part in (self._workers, self._projections, self._policies, self._errors, self._jobs):
            yield from _guarded(part)

    def _workers(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily(
            "dianabot_workers_leader", "1 when this process holds the workers, else 0"
        )
        leader.add_metric([], 1.0 if self.workers.is_leader else 0.0)
        yield leader
        up = GaugeMetricFamily("dianabot_store_up", "1 when the event store answers, else 0")
        up.add_metric([], 1.0 if self.workers.store_answers()[0] else 0.0)
        yield up
        head = GaugeMetricFamily(
            "dianabot_event_log_head", "The last position of the notification log"
        )
        head.add_metric([], float(self.workers.head()))
        yield head

    def _projections(self) -> Iterator[Metric]:
        projections = self.workers.services.projections
        if projections is None:
            return
        position = GaugeMetricFamily(
            "dianabot_projection_position", "Last event applied", labels=["projection"]
        )
        lag = GaugeMetricFamily(
            "dianabot_projection_lag", "Events behind the head", labels=["projection"]
        )
        failed = GaugeMetricFamily(
            "dianabot_projection_failed", "1 when stopped on an event", labels=["projection"]
        )
        for status in projections.status():
            position.add_metric([status.name], float(status.position))
            lag.add_metric([status.name], float(status.lag))
            failed.add_metric([status.name], 1.0 if status.state == "failed" else 0.0)
        yield from (position, lag, failed)

    def _policies(self) -> Iterator[Metric]:
        policies = self.workers.services.policies
        if policies is None:
            return
        position = GaugeMetricFamily(
            "dianabot_policy_position", "Last event handled", labels=["policy"]
        )
        lag = GaugeMetricFamily("dianabot_policy_lag", "Events behind the head", labels=["policy"])
        retrying = GaugeMetricFamily(
            "dianabot_policy_retrying", "1 while held back before an event", labels=["policy"]
        )
        for status in policies.status():
            position.add_metric([status.name], float(status.position))
            lag.add_metric([status.name], float(status.lag))
            retrying.add_metric([status.name], 1.0 if status.failing_at is not None else 0.0)
        yield from (position, lag, retrying)
        parked = CounterMetricFamily(
            "dianabot_policy_parked_events",
            "Events parked by this process's policy runner",
            labels=["policy"],
        )
        for slot in policies.runner.slots:
            parked.add_metric([slot.name], float(slot.parked))
        yield parked

    def _errors(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "dianabot_subscriber_errors",
            "Failures of a projector or a policy on an event (each attempt), in this process",
            labels=["kind", "subscriber"],
        )
        projections = self.workers.services.projections
        if projections is not None:
            for projection in projections.runner.slots:
                errors.add_metric(["projection", projection.name], float(projection.errors))
        policies = self.workers.services.policies
        if policies is not None:
            for policy in policies.runner.slots:
                errors.add_metric(["policy", policy.name], float(policy.errors))
        yield errors

    def _jobs(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "dianabot_job_runs", "Runs of each time-driven job, by result", labels=["job", "result"]
        )
        success = GaugeMetricFamily(
            "dianabot_job_last_success_timestamp_seconds",
            "When each job last succeeded (seconds since the epoch)",
            labels=["job"],
        )
        for status in self.workers.jobs.status():
            runs.add_metric([status.name, "ok"], float(status.runs - status.failures))
            runs.add_metric([status.name, "error"], float(status.failures))
            if status.last_success is not None:
                success.add_metric([status.name], status.last_success)
        yield from (runs, success)


def _guarded(part: Callable[[], Iterator[Metric]]) -> list[Any]:
    """One part's metrics, or none when it cannot be read now (the store is down)."""
    try:
        return list(part())
    except Exception as error:
        log.debug("metrics: %s unavailable: %s", part.__name__, error)
        return []
