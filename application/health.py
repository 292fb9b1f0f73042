"""Health and status of the running system, as the coordinator reports them.

The reports (`HealthReport`, `StatusReport`), the rules that turn module states into the overall
status (`HealthRules`), and the ports the coordinator reads them through: `SubscriberGroup`
(projections, policies), `StoreProbe` (the event store), `TelegramMonitor` (the bot), `Census`
(cheap counts of the read models); `application.ports.IncidentLog` gives the parked events and
the last reconciliation. The read side and the adapters implement them
(`adapters/coordination.py`); nothing here imports either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

OK = "ok"
DEGRADED = "degraded"
FAILING = "failing"
NOT_RUNNING = "not running"
UNKNOWN = "unknown"

LAG_THRESHOLD = 1_000
"""Events behind the head beyond which a subscriber makes the system degraded."""

SUBSCRIBER_FAILED = "failed"
"""A projection's state after an event it cannot fold (it waits for a fix, or a rebuild)."""
SUBSCRIBER_OUTDATED = "outdated"
"""A projection whose projector changed since its rows were built (it needs a rebuild)."""
SUBSCRIBER_RETRYING = "retrying"
"""A policy held before an event that failed, until its next attempt (then it is parked)."""


# ----- ports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriberState:
    """Where one subscriber (a projection or a policy) stands, as its runner reports it."""

    name: str
    position: int
    head: int
    state: str
    """ok, failed, outdated, building (projections); ok, retrying (policies)."""
    last_error: str | None = None
    failed_at: int | None = None
    """The position of the event it failed on (None when not failing)."""
    attempts: int = 0
    parked: int = 0
    """Events this subscriber parked as this process saw (the `IncidentLog` knows them all)."""

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


class SubscriberGroup(Protocol):
    """A group of subscribers kept at the head of the log by one live runner."""

    @property
    def kind(self) -> str:
        """ "projection" or "policy"."""
        ...

    @property
    def running(self) -> bool:
        """Whether this process runs the group's live runner."""
        ...

    def start(self) -> None:
        """Start the live runner (a no-op if it runs)."""
        ...

    def standings(self) -> Sequence[SubscriberState]:
        """Each subscriber's position (any process's) and state."""
        ...


class StoreProbe(Protocol):
    """A cheap query of the event store: the head of its notification log."""

    def head(self) -> int: ...


@dataclass(frozen=True)
class TelegramStatus:
    """What the bot says of its connection to Telegram."""

    running: bool
    connected: bool = False
    detail: str = ""
    last_update_at: datetime | None = None


class TelegramMonitor(Protocol):
    """The bot's side of health (provided by the Telegram adapter when it runs)."""

    def telegram_status(self) -> TelegramStatus: ...


class Census(Protocol):
    """Cheap counts from the read models (players, ...), for `status()`."""

    def counts(self) -> Mapping[str, int]: ...


# ----- reports --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionReport:
    """One subscriber as `initialize()` and `status()` report it."""

    group: str
    name: str
    position: int
    head: int
    state: str
    running: bool

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "state": self.state,
            "running": self.running,
        }


@dataclass(frozen=True)
class StoreHealth:
    reachable: bool
    latency_ms: float | None
    head: int | None
    error: str | None = None
    status: str = OK

    def to_dict(self) -> dict[str, Any]:
        latency = None if self.latency_ms is None else round(self.latency_ms, 2)
        return {
            "status": self.status,
            "reachable": self.reachable,
            "latency_ms": latency,
            "head": self.head,
            "error": self.error,
        }


@dataclass(frozen=True)
class SubscriberHealth:
    """One projection's or policy's health."""

    kind: str
    name: str
    status: str
    position: int | None
    head: int | None
    lag: int | None
    state: str
    last_error: str | None
    failed_at: int | None
    parked: int
    running: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "state": self.state,
            "last_error": self.last_error,
            "failed_at": self.failed_at,
            "parked": self.parked,
            "running": self.running,
        }


@dataclass(frozen=True)
class TelegramHealth:
    status: str
    running: bool
    connected: bool
    detail: str = ""
    last_update_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "running": self.running,
            "connected": self.connected,
            "detail": self.detail,
            "last_update_at": None if self.last_update_at is None else str(self.last_update_at),
        }


@dataclass(frozen=True)
class IntegrityMetrics:
    """The last full reconciliation, as the incident log recorded it (None fields: never)."""

    available: bool
    """False when no incident log is wired (nothing is known)."""
    reconciled_at: str | None = None
    position: int | None = None
    consistent: bool | None = None
    differences: int | None = None
    checks: Mapping[str, int] = field(default_factory=dict)
    parked_events: int | None = None

    @property
    def ran(self) -> bool:
        return self.reconciled_at is not None or self.consistent is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "reconciled_at": self.reconciled_at,
            "position": self.position,
            "consistent": self.consistent,
            "differences": self.differences,
            "checks": dict(self.checks),
            "parked_events": self.parked_events,
        }


@dataclass(frozen=True)
class HealthReport:
    status: str
    """ok, degraded or failing (see `HealthRules`)."""
    checked_at: datetime
    store: StoreHealth
    projections: tuple[SubscriberHealth, ...]
    policies: tuple[SubscriberHealth, ...]
    telegram: TelegramHealth
    integrity: IntegrityMetrics
    reasons: tuple[str, ...]
    """Why the status is not ok (one line each)."""
    recommendations: tuple[str, ...]
    """What an operator can do, concretely (commands to run)."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Modules whose status could not be read, and why."""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def failing(self) -> bool:
        return self.status == FAILING

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "modules": {
                "event_store": self.store.to_dict(),
                "projections": [p.to_dict() for p in self.projections],
                "policies": [p.to_dict() for p in self.policies],
                "telegram": self.telegram.to_dict(),
            },
            "integrity": self.integrity.to_dict(),
            "reasons": list(self.reasons),
            "recommendations": list(self.recommendations),
            "errors": dict(self.errors),
        }


@dataclass(frozen=True)
class StatusReport:
    checked_at: datetime
    head: int | None
    counts: Mapping[str, int]
    subscriptions: tuple[SubscriptionReport, ...]
    errors: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "head": self.head,
            "counts": dict(self.counts),
            "subscriptions": [s.to_dict() for s in self.subscriptions],
            "errors": dict(self.errors),
        }


# ----- health rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing health noticed: how bad (degraded or failing), why, and what to do."""

    level: str
    reason: str
    advice: str


@dataclass(frozen=True)
class HealthRules:
    """How module states make the overall status:

    - failing: the event store is unreachable, or a projection failed (its read model stopped);
    - degraded: a policy is retrying or has parked events, a projection is outdated, a
      subscriber's lag is above `lag_threshold`, the last reconciliation found differences, or
      Telegram runs but is not connected;
    - ok otherwise. No reconciliation yet is a recommendation, not a degradation.
    """

    lag_threshold: int = LAG_THRESHOLD

    def store(self, store: StoreHealth) -> list[Finding]:
        if store.reachable:
            return []
        return [
            Finding(
                FAILING,
                f"event store unreachable: {store.error or 'no answer'}",
                "event store unreachable: check DIANABOT_DATABASE_URL and that the database is "
                "up (`dianabot config` shows the store in use)",
            )
        ]

    def projection(self, p: SubscriberHealth) -> list[Finding]:
        where = f" at {p.failed_at}" if p.failed_at is not None else ""
        if p.state == SUBSCRIBER_FAILED:
            return [
                Finding(
                    FAILING,
                    f"projection {p.name} failed{where}: {p.last_error or 'unknown error'}",
                    f"projection {p.name} failed{where}: fix the cause and restart the workers, "
                    f"or `dianabot projections rebuild {p.name}`",
                )
            ]
        if p.state == SUBSCRIBER_OUTDATED:
            return [
                Finding(
                    DEGRADED,
                    f"projection {p.name} is outdated (its projector changed)",
                    f"projection {p.name} is outdated: `dianabot projections rebuild {p.name}`",
                )
            ]
        return self._lag("projection", p)

    def policy(self, p: SubscriberHealth) -> list[Finding]:
        found: list[Finding] = []
        if p.state == SUBSCRIBER_RETRYING:
            where = f" at {p.failed_at}" if p.failed_at is not None else ""
            error = p.last_error or "unknown error"
            found.append(
                Finding(
                    DEGRADED,
                    f"policy {p.name} is retrying the event{where}: {error}",
                    f"policy {p.name} is retrying the event{where} ({error}); it is parked "
                    "after its last attempt: fix the cause if it persists",
                )
            )
        if p.parked:
            found.append(
                Finding(
                    DEGRADED,
                    f"policy {p.name} has {p.parked} parked events",
                    f"policy {p.name} has {p.parked} parked events: fix the cause, then "
                    f"`dianabot policies retry --policy {p.name}`",
                )
            )
        return found + self._lag("policy", p)

    def _lag(self, kind: str, p: SubscriberHealth) -> list[Finding]:
        if p.lag is None or p.lag <= self.lag_threshold:
            return []
        return [
            Finding(
                DEGRADED,
                f"{kind} {p.name} is {p.lag} events behind (threshold {self.lag_threshold})",
                f"{kind} {p.name} lags {p.lag} events: check that `dianabot workers` runs "
                "and keeps up",
            )
        ]

    def integrity(self, integrity: IntegrityMetrics) -> list[Finding]:
        if not integrity.available:
            return []
        if not integrity.ran:
            return [Finding(OK, "", "no reconciliation yet: run `dianabot reconcile`")]
        if integrity.consistent is False or (integrity.differences or 0) > 0:
            return [
                Finding(
                    DEGRADED,
                    f"the last reconciliation ({integrity.reconciled_at}) found "
                    f"{integrity.differences} differences at position {integrity.position}",
                    f"the last reconciliation found {integrity.differences} differences: "
                    "`dianabot reconcile` to see them, `dianabot reconcile --fix` to repair",
                )
            ]
        return []

    def telegram(self, telegram: TelegramHealth) -> list[Finding]:
        if not telegram.running or telegram.connected:
            return []
        return [
            Finding(
                DEGRADED,
                f"Telegram not connected: {telegram.detail or 'no detail'}",
                "Telegram is not connected: check the bot token and the network",
            )
        ]

    def report(
        self,
        at: datetime,
        store: StoreHealth,
        projections: Sequence[SubscriberHealth] = (),
        policies: Sequence[SubscriberHealth] = (),
        telegram: TelegramHealth | None = None,
        integrity: IntegrityMetrics | None = None,
        errors: Mapping[str, str | None] | None = None,
    ) -> HealthReport:
        """The report of these modules' states, judged by these rules."""
        telegram = telegram or TelegramHealth(NOT_RUNNING, False, False)
        integrity = integrity or IntegrityMetrics(available=False)
        findings = [
            *self.store(store),
            *(f for p in projections for f in self.projection(p)),
            *(f for p in policies for f in self.policy(p)),
            *self.integrity(integrity),
            *self.telegram(telegram),
        ]
        return HealthReport(
            status=worst(findings),
            checked_at=at,
            store=store,
            projections=tuple(projections),
            policies=tuple(policies),
            telegram=telegram,
            integrity=integrity,
            reasons=tuple(f.reason for f in findings if f.level != OK),
            recommendations=tuple(dict.fromkeys(f.advice for f in findings if f.advice)),
            errors={k: v for k, v in (errors or {}).items() if v is not None},
        )

    def unreachable(self, at: datetime, error: str) -> HealthReport:
        """The report when the store cannot even be opened (failing)."""
        return self.report(at, StoreHealth(False, None, None, error, FAILING), errors={})


def worst(findings: Iterable[Finding]) -> str:
    """The overall level of some findings: failing, degraded, or ok."""
    levels = {f.level for f in findings}
    return FAILING if FAILING in levels else DEGRADED if DEGRADED in levels else OK


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
