"""Handlers of what the system records about its own trouble (`domain.incidents`)."""

from __future__ import annotations

from dianabot.application.app import CoreApplication
from dianabot.application.commands import ParkEvent
from dianabot.application.plans import Handler, Plan
from dianabot.domain.cause import Cause
from dianabot.domain.ids import parked_event_id
from dianabot.domain.incidents import AlreadyParked, ParkedEvent


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


HANDLERS: dict[type, Handler] = {ParkEvent: park_event}
