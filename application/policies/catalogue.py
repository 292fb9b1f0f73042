"""Which badges exist, by criteria kind: the catalogue, and every badge defined since.

Read from the notification log (`BadgeDefined`, `BadgeChanged` and `BadgeRetired`, by class)
once, on first use, and again from where that look stopped whenever the policy meets one of
those events in the log (`noted`): the policies that use a directory list `DIRECTORY_EVENTS`
among the events they handle, so a badge an admin defines is considered from the very next
event on, and no event costs a query. The directory also keeps each defined badge as it was
last loaded (`definition`), so asking whether a badge is due does not load the badge's stream
for every event (the award's handler loads it again, inside its command).
"""

from __future__ import annotations

import threading
from typing import Any

from dianabot.application.handlers.badges import described
from dianabot.domain.badge import Badge
from dianabot.domain.catalogue import INITIAL_BADGES

DIRECTORY_EVENTS = frozenset({"BadgeDefined", "BadgeChanged", "BadgeRetired"})


class BadgeDirectory:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._criteria: dict[str, dict[str, Any]] = {
            spec.slug: dict(spec.criteria) for spec in INITIAL_BADGES
        }
        self._badges: dict[str, Badge] = {}
        self._position = 0
        self._looked = False
        self._lock = threading.Lock()

    def slugs(self, kinds: frozenset[str]) -> tuple[str, ...]:
        """The badges whose criteria are of these kinds, in a stable order."""
        return tuple(self.criteria(kinds))

    def criteria(self, kinds: frozenset[str]) -> dict[str, dict[str, Any]]:
        """The criteria of the badges whose criteria are of these kinds, by slug, in a stable
        order (retired badges included: the award's handler skips them)."""
        self.refresh()
        return {
            slug: criteria
            for slug, criteria in sorted(self._criteria.items())
            if criteria.get("kind") in kinds
        }

    def noted(self, event: Any) -> bool:
        """True for a badge definition's event (the directory looks again): nothing else to
        do for it."""
        if type(event).__name__ not in DIRECTORY_EVENTS:
            return False
        self.refresh(now=True)
        return True

    def refresh(self, *, now: bool = False) -> None:
        """Look for badges defined or changed since the last look (`now`: even if looked)."""
        # The @event decorator defines these classes when Badge is created.
        defined = Badge.BadgeDefined  # type: ignore[attr-defined]
        changed = Badge.BadgeChanged  # type: ignore[attr-defined]
        retired = Badge.BadgeRetired  # type: ignore[attr-defined]
        with self._lock:
            if self._looked and not now:
                return
            self._looked = True
            seen: set[Any] = set()
            kinds = [defined, changed, retired]
            for notification in self.app.scan_notifications(kinds, self._position + 1):
                seen.add(notification.originator_id)
                self._position = notification.id
            for stream in seen:
                badge = self.app._load(stream)
                if badge is not None:
                    self._criteria[badge.slug] = dict(badge.criteria)
                    self._badges[badge.slug] = badge

    def definition(self, slug: str) -> tuple[Badge | None, dict[str, Any] | None]:
        """The badge as last loaded (None for a catalogue badge not defined yet) and its
        criteria (None when it awards nothing: unknown, or retired); `handlers.badges`'
        `definition` without a query."""
        self.refresh()
        return described(slug, self._badges.get(slug))
