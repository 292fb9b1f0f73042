"""Handlers of what the system records about its own trouble (`domain.incidents`)."""

from __future__ import annotations

from typing import Any

from dianabot.application.app import CoreApplication
from dianabot.application.authority import authorize
from dianabot.application.commands import (
    FailParkedRetry,
    ParkEvent,
    RecordCommandFailure,
    RecordConsistencyCheck,
    RecordReconciliation,
    RetryParkedEvent,
)
from dianabot.application.plans import Handler, Plan
from dianabot.application.results import Origin
from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from dianabot.domain.ids import journal_id, parked_event_id
from dianabot.domain.incidents import AlreadyParked, Journal, NotParked, ParkedEvent


def park_event(app: CoreApplication, command: ParkEvent) -> Plan:
    def decide(cause: Cause) -> list[ParkedEvent]:
        if app._load(parked_event_id(command.policy, command.position)) is not None:
            raise AlreadyParked(f"{command.policy} already parked the event at {command.position}")
        return [
            ParkedEvent.park(
                command.policy,
                command.position,
                command.originator_id,
                command.originator_version,
                command.event_name,
                command.error,
                command.attempts,
                cause,
            )
        ]

    return Plan(decide)


def _parked(app: CoreApplication, policy: str, position: int) -> ParkedEvent:
    parked: ParkedEvent | None = app._load(parked_event_id(policy, position))
    if parked is None:
        raise NotParked(
            f"no event parked by {policy} at {position}", policy=policy, position=position
        )
    return parked


def retry_parked_event(app: CoreApplication, command: RetryParkedEvent) -> Plan:
    """The policy's reaction, decided as its own command's handler decides it, saved with the
    parked event's resolution: one transaction, so the effect happens once."""
    reaction = command.reaction

    def decide(cause: Cause) -> list[Any]:
        parked = _parked(app, command.policy, command.position)
        parked.check_open()
        if reaction is None:
            parked.resolve("nothing to do: the policy has no effect for it now", cause)
            return [parked]
        # The effect is the policy's, caused by the parked event, as the runner would have
        # recorded it (and only what a policy may issue); the resolution is the operator's.
        acting = Origin(parked.evidence, f"policy:{parked.policy}")
        authorize(reaction, acting, app.admin_ids)
        handler = app.handlers.get(type(reaction))
        if handler is None:
            raise TypeError(f"no handler for {type(reaction).__name__}")
        try:
            decided = handler(app, reaction).decide(acting.cause(cause.at))
            effect = [a for a in decided if a is not None]
        except DomainError as refusal:
            parked.resolve(f"refused: {refusal.code}: {refusal.message}", cause)
            return [parked]
        name = type(reaction).__name__
        if not any(aggregate.pending_events for aggregate in effect):
            parked.resolve(f"nothing to do: {name} changes nothing now", cause)
            return [parked]
        parked.resolve(f"applied: {name}", cause)
        return [*effect, parked]

    return Plan(decide)


def fail_parked_retry(app: CoreApplication, command: FailParkedRetry) -> Plan:
    def decide(cause: Cause) -> list[ParkedEvent]:
        parked = _parked(app, command.policy, command.position)
        parked.retry_failed(command.error, cause)
        return [parked]

    return Plan(decide)


def _journal(app: CoreApplication, cause: Cause) -> Journal:
    journal: Journal | None = app._load(journal_id())
    return journal if journal is not None else Journal.open(cause)


def record_command_failure(app: CoreApplication, command: RecordCommandFailure) -> Plan:
    def decide(cause: Cause) -> list[Journal]:
        journal = _journal(app, cause)
        journal.record_failure(
            command.command,
            command.command_key,
            command.telegram_id,
            command.outcome,
            command.message,
            command.requested_by,
            command.stream,
            command.version,
            cause,
        )
        return [journal]

    return Plan(decide)


def record_consistency_check(app: CoreApplication, command: RecordConsistencyCheck) -> Plan:
    def decide(cause: Cause) -> list[Journal]:
        journal = _journal(app, cause)
        journal.record_check(
            command.telegram_id,
            command.consistent,
            command.differences,
            command.position,
            command.problems,
            cause,
        )
        return [journal]

    return Plan(decide)


def record_reconciliation(app: CoreApplication, command: RecordReconciliation) -> Plan:
    def decide(cause: Cause) -> list[Journal]:
        journal = _journal(app, cause)
        journal.record_reconciliation(
            command.position,
            command.consistent,
            command.differences,
            dict(command.checks),
            command.fixes,
            command.seconds,
            cause,
        )
        return [journal]

    return Plan(decide)


HANDLERS: dict[type, Handler] = {
    ParkEvent: park_event,
    RetryParkedEvent: retry_parked_event,
    FailParkedRetry: fail_parked_retry,
    RecordCommandFailure: record_command_failure,
    RecordConsistencyCheck: record_consistency_check,
    RecordReconciliation: record_reconciliation,
}
