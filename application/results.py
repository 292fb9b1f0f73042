"""Typed command outcomes and origins: callers get a result, never a leaked exception."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any
from uuid import UUID, uuid4

from dianabot.domain.cause import Cause
from dianabot.domain.errors import DomainError
from eventsourcing.persistence import Recording

OK = "ok"
CONFLICT = "conflict"
UNAVAILABLE = "unavailable"
CORRUPT_HISTORY = "corrupt_history"
"""A stream's stored history cannot be replayed (`application.corruption`)."""

CONSOLE_ADMIN_ID = 0
"""The operator at the server's console: the admin id its acts record. Trusted as an admin only
through an origin built for the console (`Origin.console`), never because a caller says 0."""

DEFAULT_BOT_ID = 0
"""The bot id `Origin.telegram` uses when none is given: tests, the CLI and the demo, which
speak for one simulated bot. The Telegram adapter must pass its bot's own id (the number before
the colon in its token): update ids are unique per bot only."""


@dataclass(frozen=True)
class Origin:
    """Who asked and why: becomes the `actor` and `causation` of every event recorded."""

    causation: str
    actor: str
    local_console: bool = field(default=False, kw_only=True)
    """Set by `Origin.console` only: the local operator, trusted as an admin (see
    `application.authority`). No adapter that serves remote users may build such an origin."""

    def cause(self, at: datetime) -> Cause:
        return Cause(self.causation, self.actor, at)

    @classmethod
    def telegram(cls, update_id: int, user_id: int, *, bot_id: int = DEFAULT_BOT_ID) -> Origin:
        """Caused by a Telegram update: `tg:<bot id>:update:<id>`, since two bots may number
        their updates alike (a keyword, so the many callers that speak for one bot are
        unchanged; see DEFAULT_BOT_ID)."""
        return cls(f"tg:{bot_id}:update:{update_id}", f"tg:user:{user_id}")

    @classmethod
    def admin(cls, admin_id: int, via: str = "cli") -> Origin:
        """A one-off administrative act; each gets its own causation."""
        return cls(f"{via}:{uuid4()}", f"admin:{admin_id}")

    @classmethod
    def console(cls, via: str = "cli") -> Origin:
        """An act of the operator at the server's console (`dianabot admin ...`), which is
        trusted as an admin: a one-off act, recorded as admin 0."""
        return cls(f"{via}:{uuid4()}", f"admin:{CONSOLE_ADMIN_ID}", local_console=True)

    @classmethod
    def policy(cls, policy: str, originator_id: UUID, version: int) -> Origin:
        """A command issued by a policy in reaction to one event: that event is the cause."""
        return cls(f"event:{originator_id}:{version}", f"policy:{policy}")

    @classmethod
    def system(cls, job: str, key: str) -> Origin:
        return cls(f"job:{job}:{key}", f"system:{job}")


class RecordedEvent:
    """One event a command recorded, with its position in the log. Read-only; its fields are
    read off the domain event when first asked for (most callers only look at names)."""

    __slots__ = ("_event", "position", "_fields")

    def __init__(self, event: Any, position: int | None) -> None:
        self._event = event
        self.position = position
        self._fields: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return type(self._event).__name__

    @property
    def originator_id(self) -> UUID:
        originator_id: UUID = self._event.originator_id
        return originator_id

    @property
    def version(self) -> int:
        version: int = self._event.originator_version
        return version

    @property
    def fields(self) -> Mapping[str, Any]:
        if self._fields is None:
            self._fields = MappingProxyType(
                {key: value for key, value in vars(self._event).items() if key not in _IDENTITY}
            )
        return self._fields

    def __repr__(self) -> str:
        return (
            f"RecordedEvent(name={self.name!r}, originator_id={self.originator_id!r}, "
            f"version={self.version!r}, position={self.position!r})"
        )


_IDENTITY = frozenset({"originator_id", "originator_version", "originator_topic"})


@dataclass(frozen=True)
class CommandResult:
    """`outcome` is "ok" or a failure code: already_reacted, cooldown, insufficient_points..."""

    outcome: str
    message: str = ""
    events: tuple[RecordedEvent, ...] = ()
    retry_after: timedelta | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == OK

    def event_names(self) -> list[str]:
        return [event.name for event in self.events]

    def with_details(self, **details: Any) -> CommandResult:
        """The same result with more details (e.g. the new fragment, a token shown once)."""
        return replace(self, details={**self.details, **details})

    def as_refusal(self, code: str, message: str, details: Mapping[str, Any]) -> CommandResult:
        """A refusal that still recorded events on purpose (a VipGateHit, a relocation)."""
        return replace(self, outcome=code, message=message, details=dict(details))

    @classmethod
    def accepted(cls, recordings: Sequence[Recording[Any]], **details: Any) -> CommandResult:
        return cls(OK, events=tuple(map(_recorded, recordings)), details=details)

    @classmethod
    def refused(cls, error: DomainError) -> CommandResult:
        return cls(
            error.code,
            message=error.message,
            retry_after=getattr(error, "retry_after", None),
            details={k: v for k, v in error.details.items() if k != "retry_after"},
        )


def _recorded(recording: Recording[Any]) -> RecordedEvent:
    return RecordedEvent(recording.domain_event, recording.notification.id)
