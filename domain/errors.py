"""Domain errors. Each has a stable `code`, which the application turns into a typed refusal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


class DomainError(Exception):
    """A command was refused by a rule. Nothing was recorded."""

    code = "refused"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    code = "invalid_input"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class DuplicateCommand(DomainError):
    """The same command (same causation) was already applied: an update processed twice."""

    code = "duplicate"


class AlreadyReacted(DomainError):
    code = "already_reacted"


class AlreadyAnswered(DomainError):
    code = "already_answered"


class _Throttled(DomainError):
    def __init__(self, message: str, retry_after: timedelta, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class Cooldown(_Throttled):
    code = "cooldown"


class AlreadyCheckedIn(_Throttled):
    code = "already_checked_in"


class AlreadyInvited(_Throttled):
    """A VIP invitation within `rules.VIP_INVITATION_PERIOD` of the previous one."""

    code = "already_invited"


class AlreadyVip(DomainError):
    """A VIP invitation for a player whose VIP period is active."""

    code = "already_vip"


class InsufficientPoints(DomainError):
    code = "insufficient_points"


class BadgeRetired(DomainError):
    code = "badge_retired"


class BadgeAlreadyHeld(DomainError):
    code = "already_held"


class BadgeNotHeld(DomainError):
    code = "not_held"


class InvalidBadge(InvalidInput):
    code = "invalid_badge"


class UnknownPlayer(DomainError):
    code = "unknown_user"


class UnknownBadge(DomainError):
    code = "unknown_badge"


class NotAuthorized(DomainError):
    code = "not_admin"
