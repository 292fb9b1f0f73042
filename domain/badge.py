"""Badges: a definition aggregate per badge and one award aggregate per (badge, user).

A user holds a badge at most once because the award's id is uuid5(slug, user) and the event store
accepts version 1 of a stream only once: no hot aggregate, no lock across users.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain.base import DianaAggregate
from dianabot.domain.cause import Cause
from dianabot.domain.errors import BadgeAlreadyHeld, BadgeNotHeld, BadgeRetired, InvalidBadge
from dianabot.domain.ids import badge_award_id, badge_id
from dianabot.domain.recent import RecentKeys
from dianabot.domain.rules import clean_text, without_controls
from eventsourcing.domain import event

MAX_REASON_LENGTH = 280
SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,47}$")

CRITERIA_PARAMETERS: dict[str, tuple[str, ...]] = {
    "first_points": (),
    "lifetime_besitos": ("threshold",),
    "checkin_streak": ("days",),
    "first_decision": (),
    "chapter_completed": ("chapter",),
    "reactions": ("count",),
    "vip_active": (),
    "manual": (),
}
"""Criteria kinds the policies understand, with their required positive integer parameters."""


def checked_slug(slug: object) -> str:
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise InvalidBadge(
            f"badge slug must be 2-48 characters of a-z, 0-9, '-' or '_', got {slug!r}"
        )
    return slug


def checked_criteria(criteria: object) -> dict[str, Any]:
    if not isinstance(criteria, dict) or criteria.get("kind") not in CRITERIA_PARAMETERS:
        kinds = ", ".join(sorted(CRITERIA_PARAMETERS))
        raise InvalidBadge(f"criteria need a 'kind' among: {kinds}; got {criteria!r}")
    expected = set(CRITERIA_PARAMETERS[criteria["kind"]])
    given = set(criteria) - {"kind"}
    if given != expected:
        raise InvalidBadge(
            f"criteria '{criteria['kind']}' take {sorted(expected) or 'no parameters'}, "
            f"got {sorted(given)}"
        )
    for name in expected:
        value = criteria[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidBadge(f"criteria parameter {name!r} must be a positive integer")
    return dict(criteria)


def _checked_label(value: object, what: str, max_length: int) -> str:
    """A label of a definition (control characters removed): refused when empty or too long."""
    if isinstance(value, str):
        value = without_controls(value)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidBadge(f"badge {what} must be 1-{max_length} characters")
    return value.strip()


def _reason(value: object, what: str) -> str:
    """A reason is free text: cleaned and cut (`clean_text`), refused only when empty."""
    text = clean_text(value, MAX_REASON_LENGTH)
    if not text:
        raise InvalidBadge(f"badge {what} must not be empty")
    return text


@dataclass(frozen=True)
class BadgeSpec:
    """What defines a badge; the catalogue and admins' definitions share this shape."""

    slug: str
    name: str
    description: str
    icon: str
    criteria: dict[str, Any] = field(default_factory=lambda: {"kind": "manual"})

    def checked(self) -> BadgeSpec:
        return BadgeSpec(
            slug=checked_slug(self.slug),
            name=_checked_label(self.name, "name", 64),
            description=_checked_label(self.description, "description", 280),
            icon=_checked_label(self.icon, "icon", 16),
            criteria=checked_criteria(self.criteria),
        )


class Badge(DianaAggregate):
    """A badge definition: defined, changed, retired. Retired badges award nothing."""

    @staticmethod
    def create_id(slug: str) -> UUID:
        return badge_id(slug)

    @classmethod
    def define(cls, spec: BadgeSpec, cause: Cause) -> Badge:
        spec = spec.checked()
        return cls(
            slug=spec.slug,
            name=spec.name,
            description=spec.description,
            icon=spec.icon,
            criteria=spec.criteria,
            **cause.event_fields(),
        )

    @event("BadgeDefined")
    def __init__(
        self,
        slug: str,
        name: str,
        description: str,
        icon: str,
        criteria: dict[str, Any],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.slug = slug
        self.name = name
        self.description = description
        self.icon = icon
        self.criteria = criteria
        self.retired = False
        self.recent_commands = RecentKeys()

    def change(self, spec: BadgeSpec, cause: Cause) -> None:
        """Criteria and texts change by events, so history shows what a badge meant when."""
        spec = spec.checked()
        if spec.slug != self.slug:
            raise InvalidBadge("a badge's slug cannot change")
        self._require_active()
        self._badge_changed(
            name=spec.name,
            description=spec.description,
            icon=spec.icon,
            criteria=spec.criteria,
            **cause.event_fields(),
        )

    def retire(self, reason: str, cause: Cause) -> None:
        self._require_active()
        self._badge_retired(reason=_reason(reason, "retirement reason"), **cause.event_fields())

    def spec(self) -> BadgeSpec:
        return BadgeSpec(self.slug, self.name, self.description, self.icon, dict(self.criteria))

    def _require_active(self) -> None:
        if self.retired:
            raise BadgeRetired(f"badge {self.slug!r} is retired", slug=self.slug)

    @event("BadgeChanged")
    def _badge_changed(
        self,
        name: str,
        description: str,
        icon: str,
        criteria: dict[str, Any],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.name, self.description, self.icon, self.criteria = name, description, icon, criteria

    @event("BadgeRetired")
    def _badge_retired(self, reason: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.retired = True


class BadgeAward(DianaAggregate):
    """One user's holding of one badge: awarded (with evidence), revoked, re-awarded."""

    @staticmethod
    def create_id(badge_slug: str, telegram_id: int) -> UUID:
        return badge_award_id(badge_slug, telegram_id)

    @classmethod
    def first(cls, badge: Badge, telegram_id: int, evidence: list[str], cause: Cause) -> BadgeAward:
        badge._require_active()
        return cls(
            badge_slug=badge.slug,
            telegram_id=telegram_id,
            evidence=_checked_evidence(evidence),
            **cause.event_fields(),
        )

    @event("BadgeAwarded")
    def __init__(
        self,
        badge_slug: str,
        telegram_id: int,
        evidence: list[str],
        timestamp: datetime,
        causation: str,
        actor: str,
    ) -> None:
        self.badge_slug = badge_slug
        self.telegram_id = telegram_id
        self.held = True
        self.evidence = evidence
        self.awarded_at = timestamp
        self.recent_commands = RecentKeys()

    def reaward(self, badge: Badge, evidence: list[str], cause: Cause) -> None:
        if self.held:
            raise BadgeAlreadyHeld(f"already holds badge {self.badge_slug!r}", slug=self.badge_slug)
        badge._require_active()
        self._badge_reawarded(evidence=_checked_evidence(evidence), **cause.event_fields())

    def revoke(self, reason: str, cause: Cause) -> None:
        if not self.held:
            raise BadgeNotHeld(f"does not hold badge {self.badge_slug!r}", slug=self.badge_slug)
        self._badge_revoked(reason=_reason(reason, "revocation reason"), **cause.event_fields())

    @event("BadgeReawarded")
    def _badge_reawarded(
        self, evidence: list[str], timestamp: datetime, causation: str, actor: str
    ) -> None:
        self.held = True
        self.evidence = evidence
        self.awarded_at = timestamp

    @event("BadgeRevoked")
    def _badge_revoked(self, reason: str, timestamp: datetime, causation: str, actor: str) -> None:
        self.held = False


def _checked_evidence(evidence: object) -> list[str]:
    if not isinstance(evidence, list | tuple) or not evidence:
        raise InvalidBadge("a badge award needs evidence: the events that satisfied the criteria")
    if not all(isinstance(item, str) and item for item in evidence):
        raise InvalidBadge("evidence items must be non-empty event references")
    return list(evidence)
