"""What the system records about its own trouble: events a policy could not handle, commands
that failed for a reason other than a rule, and what consistency checks found.

A policy that keeps failing on an event (after its retries) parks it and moves on, so one bad
event never stops a subscriber. The parking is an event like any other, written in the same
transaction as the policy's new position, so an event is parked exactly once; it keeps what is
needed to try again (`dianabot policies retry`) and to tell an operator why. A retry that
applies the policy's effect resolves the parked event in the same transaction as that effect
(`ParkedEventResolved`), so the effect happens once; one that fails again says so
(`ParkedEventRetryFailed`) and leaves it parked.

The `Journal` is the system's own stream (one, `journal_id()`): commands that failed for a
reason other than a rule refusal (`CommandFailed`: a corrupt history, conflicts the bus gave up
on), the outcome of each consistency check of a user (`ConsistencyChecked`), and each full
reconciliation's summary (`ReconciliationCompleted`). Nothing in it changes a user's state; it
is what an operator, the health report and the error-recovery policy read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.ids import journal_id, parked_event_id
from dianabot.domain.recent import RecentKeys
from dianabot.domain.rules import clean_text
from eventsourcing.domain import event

MAX_ERROR_LENGTH = 500
MAX_OUTCOME_LENGTH = 500
MAX_PROBLEMS = 10
"""Problems a consistency check keeps, one line each (all are counted)."""
MAX_PROBLEM_LENGTH = 300

PARKED = "parked"
RESOLVED = "resolved"


class AlreadyParked(DomainError):
    """This policy has already parked the event at this position."""


class NotParked(DomainError):
    """No event is parked for this policy at this position."""

    code = "not_parked"


class AlreadyResolved(DomainError):
    """The parked event was resolved already (a retry applied it, or it was refused)."""

    code = "already_resolved"


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
            stream_id=str(originator_id),
            stream_version=originator_version,
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
        stream_id: str,
        stream_version: int,
        event_name: str,
        error: str,
        attempts: int,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.policy = policy
        self.position = position
        self.stream_id = stream_id
        """The stream of the event parked (`originator_id` is this aggregate's own)."""
        self.stream_version = stream_version
        self.event_name = event_name
        self.error = error
        self.attempts = attempts
        self.parked_at = timestamp
        self.state = PARKED
        self.outcome: str | None = None
        self.resolved_at: datetime | None = None
        self.recent_commands = RecentKeys()

    @property
    def evidence(self) -> str:
        """The parked event, as award evidence and causations name events."""
        return f"event:{self.stream_id}:{self.stream_version}"

    def check_open(self) -> None:
        """Refuse (`already_resolved`) unless the event is still parked."""
        if self.state == RESOLVED:
            raise AlreadyResolved(
                f"{self.policy}'s parked event at {self.position} is resolved already "
                f"({self.outcome})",
                policy=self.policy,
                position=self.position,
            )

    def resolve(self, outcome: str, cause: Cause) -> None:
        """The parked event is dealt with: its effect applied (saved in the same transaction),
        refused by the rules, or found to need nothing. Once."""
        self.check_open()
        self._resolved(
            outcome=clean_text(outcome, MAX_OUTCOME_LENGTH) or "resolved", **cause.event_fields()
        )

    @event("ParkedEventResolved")
    def _resolved(self, outcome: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.state = RESOLVED
        self.outcome = outcome
        self.resolved_at = timestamp

    def retry_failed(self, error: str, cause: Cause) -> None:
        """A retry failed again (the policy raised, or its command could not run): still
        parked, one attempt more, with the new error."""
        self.check_open()
        self._retry_failed(
            attempts=self.attempts + 1,
            error=clean_text(error, MAX_ERROR_LENGTH) or "unknown error",
            **cause.event_fields(),
        )

    @event("ParkedEventRetryFailed")
    def _retry_failed(
        self, attempts: int, error: str, timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.attempts = attempts
        self.error = error


class Journal(DianaAggregate):
    """The system's own stream: failures, consistency checks, reconciliations (see the module
    docstring). Appended to, never changed; it remembers recent command keys so that one
    failure reported twice (a policy's retries of one command) is recorded once."""

    @staticmethod
    def create_id(name: str = "system") -> UUID:
        return journal_id(name)

    @classmethod
    def open(cls, cause: Cause, name: str = "system") -> Journal:
        return cls(name=name, **cause.event_fields())

    @event("JournalOpened")
    def __init__(self, name: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.name = name
        self.failures = 0
        self.checks = 0
        self.reconciliations = 0
        self.recent_commands = RecentKeys()

    def record_failure(
        self,
        command: str,
        key: str,
        telegram_id: int | None,
        outcome: str,
        message: str,
        requested_by: str,
        stream: str | None,
        version: int | None,
        cause: Cause,
    ) -> None:
        """A command failed for a reason other than a rule refusal. The same command failing
        again for the same cause (a policy retrying it) is refused as a duplicate."""
        key = clean_text(key, 200)
        self._refuse_duplicate(_failure_key(command, key), cause)
        self._command_failed(
            command=command,
            key=key,
            telegram_id=telegram_id,
            outcome=outcome,
            message=clean_text(message, MAX_ERROR_LENGTH),
            requested_by=requested_by,
            stream=stream,
            version=version,
            **cause.event_fields(),
        )

    @event("CommandFailed")
    def _command_failed(
        self,
        command: str,
        key: str,
        telegram_id: int | None,
        outcome: str,
        message: str,
        requested_by: str,
        stream: str | None,
        version: int | None,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.failures += 1
        self._remember(_failure_key(command, key), causation, timestamp)

    def record_check(
        self,
        telegram_id: int,
        consistent: bool,
        differences: int,
        position: int,
        problems: Sequence[str],
        cause: Cause,
    ) -> None:
        """A consistency check of one user found this (at log `position`). Once per cause."""
        self._refuse_duplicate(f"ConsistencyChecked:{telegram_id}", cause)
        kept = [clean_text(p, MAX_PROBLEM_LENGTH) for p in list(problems)[:MAX_PROBLEMS]]
        self._consistency_checked(
            telegram_id=telegram_id,
            consistent=bool(consistent),
            differences=int(differences),
            position=int(position),
            problems=kept,
            **cause.event_fields(),
        )

    @event("ConsistencyChecked")
    def _consistency_checked(
        self,
        telegram_id: int,
        consistent: bool,
        differences: int,
        position: int,
        problems: list[str],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.checks += 1
        self._remember(f"ConsistencyChecked:{telegram_id}", causation, timestamp)

    def record_reconciliation(
        self,
        position: int,
        consistent: bool,
        differences: int,
        checks: Mapping[str, int],
        fixes: int,
        seconds: float,
        cause: Cause,
    ) -> None:
        """A full reconciliation ran at log `position` and found this. Once per cause."""
        self._refuse_duplicate("ReconciliationCompleted", cause)
        self._reconciliation_completed(
            position=int(position),
            consistent=bool(consistent),
            differences=int(differences),
            checks={str(name): int(count) for name, count in sorted(checks.items())},
            fixes=int(fixes),
            seconds=round(float(seconds), 3),
            **cause.event_fields(),
        )

    @event("ReconciliationCompleted")
    def _reconciliation_completed(
        self,
        position: int,
        consistent: bool,
        differences: int,
        checks: dict[str, Any],
        fixes: int,
        seconds: float,
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.reconciliations += 1
        self._remember("ReconciliationCompleted", causation, timestamp)


def _failure_key(command: str, key: str) -> str:
    return f"CommandFailed:{command}:{key}"
