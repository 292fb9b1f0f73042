"""What the system records about its own trouble: events a policy could not handle.

A policy that keeps failing on an event (after its retries) parks it and moves on, so one bad
event never stops a subscriber. The parking is an event like any other, written in the same
transaction as the policy's new position, so an event is parked exactly once; it keeps what is
needed to try again (`dianabot policies retry`) and to tell an operator why.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.ids import parked_event_id
from dianabot.domain.recent import RecentKeys
from dianabot.domain.rules import clean_text
from eventsourcing.domain import event

MAX_ERROR_LENGTH = 500

PARKED = "parked"
RESOLVED = "resolved"


class AlreadyParked(DomainError):
    """This policy has already parked the event at this position."""


class ParkedEvent(DianaAggregate):
    """One event one policy gave up on: which event, where in the log, why, how often."""

    @staticmethod
    def create_id(policy: str, position: int) -> UUID:
        return parked_event_id(policy, position)

    @classmethod
    def park(
        cls,
        policy: str,
        position: int,
        originator_id: str,
        originator_version: int,
        event_name: str,
        error: str,
        attempts: int,
        cause: Cause,
    ) -> ParkedEvent:
        return cls(
            policy=policy,
            position=position,
            originator_id=originator_id,
            originator_version=originator_version,
            event_name=event_name,
            error=clean_text(error, MAX_ERROR_LENGTH) or "unknown error",
            attempts=attempts,
            **cause.event_fields(),
        )

    @event("EventParked")
    def __init__(
        self,
        policy: str,
        position: int,
        originator_id: str,
        originator_version: int,
        event_name: str,
        error: str,
        attempts: int,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.policy = policy
        self.position = position
        self.originator_id = originator_id
        self.originator_version = originator_version
        self.event_name = event_name
        self.error = error
        self.attempts = attempts
        self.parked_at = timestamp
        self.state = PARKED
        self.recent_commands = RecentKeys()

    @property
    def evidence(self) -> str:
        """The parked event, as award evidence and causations name events."""
        return f"event:{self.originator_id}:{self.originator_version}"
