"""Why and when a command happens: travels into every event it records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

from dianabot.domain.errors import InvalidInput


class EventFields(TypedDict):
    """What `Cause.event_fields` returns, typed per key so `**cause.event_fields()` type-checks."""

    timestamp: datetime
    causation: str
    actor: str


@dataclass(frozen=True)
class Cause:
    """Causation (e.g. `tg:0:update:123`), actor (e.g. `tg:user:42`, `admin:7`) and the time.

    The time comes from the application's injected clock; the domain never reads a clock.
    """

    causation: str
    actor: str
    at: datetime

    def __post_init__(self) -> None:
        if not self.causation or not self.actor:
            raise InvalidInput("causation and actor are required")
        if self.at.tzinfo is None:
            raise InvalidInput("event times must be timezone-aware")

    def event_fields(self) -> EventFields:
        """The keyword arguments every `@event` method takes: timestamp, causation, actor."""
        return {"timestamp": self.at, "causation": self.causation, "actor": self.actor}
