"""The coordinator's ports, implemented on what the composition root has built.

`application.coordinator.Coordinator` reads the read side and the event store through ports
(`application.health`, `application.ports`); here the projections and the policies become
`SubscriberGroup`s, the event log a `StoreProbe`, the read models a `Census`, and the per-user
reconciliation a `ConsistencyChecker`. `build_coordinator` wires them (`Services.coordinator`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dianabot.application.clock import Clock
from dianabot.application.coordinator import Coordinator
from dianabot.application.health import HealthRules, StoreProbe, SubscriberGroup, SubscriberState
from dianabot.application.ports import IncidentLog
from dianabot.projections import queries
from dianabot.projections.consistency import ReplayConsistency
from dianabot.projections.service import Projections
from dianabot.projections.subscriptions import Policies


class ProjectionGroup:
    """The read models as the coordinator sees them."""

    kind = "projection"

    def __init__(self, projections: Projections) -> None:
        self.projections = projections

    @property
    def running(self) -> bool:
        return self.projections.live.running

    def start(self) -> None:
        self.projections.start()

    def standings(self) -> Sequence[SubscriberState]:
        return [
            SubscriberState(
                name=s.name,
                position=s.position,
                head=s.head,
                state=s.state,
                last_error=s.last_error,
                failed_at=s.failed_position,
            )
            for s in self.projections.status()
        ]


class PolicyGroup:
    """The policies as the coordinator sees them (errors and attempts as this process saw
    them; positions as recorded, by any process)."""

    kind = "policy"

    def __init__(self, policies: Policies) -> None:
        self.policies = policies

    @property
    def running(self) -> bool:
        return self.policies.live.running

    def start(self) -> None:
        self.policies.start()

    def standings(self) -> Sequence[SubscriberState]:
        return [
            SubscriberState(
                name=s.name,
                position=s.position,
                head=s.head,
                state=s.state,
                last_error=s.last_error,
                failed_at=s.failing_at,
                attempts=s.attempts,
                parked=s.parked,
            )
            for s in self.policies.status()
        ]


class ReadModelCensus:
    """Counts that cost one query each."""

    def __init__(self, projections: Projections) -> None:
        self.projections = projections

    def counts(self) -> Mapping[str, int]:
        return {"players": queries.player_count(self.projections)}


def build_coordinator(
    bus: Any,
    store: StoreProbe,
    clock: Clock,
    projections: Projections | None,
    policies: Policies | None,
    *,
    incidents: IncidentLog | None = None,
    rules: HealthRules | None = None,
) -> Coordinator:
    """The coordinator over `bus`, with whatever read side and policies were built."""
    groups: list[SubscriberGroup] = []
    if projections is not None:
        groups.append(ProjectionGroup(projections))
    if policies is not None:
        groups.append(PolicyGroup(policies))
    return Coordinator(
        bus,
        store=store,
        subscribers=groups,
        incidents=incidents,
        consistency=None if projections is None else ReplayConsistency(projections),
        census=None if projections is None else ReadModelCensus(projections),
        clock=clock,
        rules=rules,
    )
