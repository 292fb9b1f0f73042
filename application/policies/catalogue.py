"""Which badges exist, by criteria kind: the catalogue, and every badge defined since.

Read from the notification log (`BadgeDefined` and `BadgeChanged`, by class), from where the
last look stopped, at most once every `MAX_AGE` seconds (a look is a query; policies ask for
every event they see), so a badge an admin defines while the workers run is considered within
a second or so.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from dianabot.domain.badge import Badge
from dianabot.domain.catalogue import INITIAL_BADGES

MAX_AGE = 1.0


class BadgeDirectory:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._criteria: dict[str, dict[str, Any]] = {
            spec.slug: dict(spec.criteria) for spec in INITIAL_BADGES
        }
        self._position = 0
        self._looked_at = float("-inf")
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

    def refresh(self, *, now: bool = False) -> None:
        """Look for badges defined or changed since the last look (`now`: whatever its age)."""
        # The @event decorator defines these classes when Badge is created.
        defined = Badge.BadgeDefined  # type: ignore[attr-defined]
        changed = Badge.BadgeChanged  # type: ignore[attr-defined]
        with self._lock:
            clock = time.monotonic()
            if not now and clock - self._looked_at < MAX_AGE:
                return
            self._looked_at = clock
            seen: set[Any] = set()
            for notification in self.app.scan_notifications([defined, changed], self._position + 1):
                seen.add(notification.originator_id)
                self._position = notification.id
            for stream in seen:
                badge = self.app._load(stream)
                if badge is not None:
                    self._criteria[badge.slug] = dict(badge.criteria)
