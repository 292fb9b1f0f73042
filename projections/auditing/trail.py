"""One user's trail: every event of every aggregate that belongs to them, in log order.

A user's aggregates follow from their Telegram id (the player, a story progress per story, a
badge award per badge) plus the VIP tokens they redeemed, named by the player's own
`VipGranted` references (`vip-token:<id>`). Stories and badges are found in the log itself
(`projections.history.EventHistory.user_streams`), so no read model is needed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dianabot.domain.badge import Badge
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import badge_award_id, player_id, progress_id
from dianabot.domain.story_versions import StoryVersions
from dianabot.projections.history import EventHistory, HistoryEntry
from dianabot.projections.ports import LoggedRow

TOKEN_PREFIX = "vip-token:"


class UnknownUser(LookupError):
    """No player with this Telegram id has any event in the log."""

    def __init__(self, telegram_id: int) -> None:
        super().__init__(f"no player with Telegram id {telegram_id} in the event log")
        self.telegram_id = telegram_id


@dataclass(frozen=True)
class TrailEntry:
    """One event of the user's trail, and which of their aggregates it belongs to."""

    aggregate: str
    """`player`, `badge-award`, `story-progress`, `vip-token` (or `other`)."""
    entry: HistoryEntry
    event: Any
    """The decoded domain event (None when it could not be decoded)."""

    def to_dict(self) -> dict[str, Any]:
        return {"aggregate": self.aggregate, **self.entry.to_dict()}


class UserTrail:
    """Reads one user's events (see the module docstring)."""

    def __init__(self, history: EventHistory) -> None:
        self.history = history
        self.log = history.log

    def require_user(self, telegram_id: int) -> None:
        """Raise `UnknownUser` unless the player's stream has events."""
        if self.log.stream_head(player_id(telegram_id)) == 0:
            raise UnknownUser(telegram_id)

    def streams(self, telegram_id: int) -> dict[UUID, str]:
        """The user's streams, each with the kind of aggregate it is."""
        badges = {spec.slug for spec in INITIAL_BADGES}
        stories: set[str] = set()
        definitions = [Badge.BadgeDefined, StoryVersions.StoryCreated]  # type: ignore[attr-defined]
        for row in self.history.scan(definitions):
            slug = getattr(self.log.decode(row), "slug", None)
            if not isinstance(slug, str):
                continue
            (badges if self.log.name_of(row.topic) == "BadgeDefined" else stories).add(slug)
        player = player_id(telegram_id)
        kinds: dict[UUID, str] = {player: "player"}
        kinds |= {progress_id(telegram_id, slug): "story-progress" for slug in sorted(stories)}
        kinds |= {badge_award_id(slug, telegram_id): "badge-award" for slug in sorted(badges)}
        for row in self.log.stream(player):
            if self.log.name_of(row.topic) != "VipGranted":
                continue
            reference = str(getattr(self.log.decode(row), "reference", ""))
            if reference.startswith(TOKEN_PREFIX):
                try:
                    kinds[UUID(reference[len(TOKEN_PREFIX) :])] = "vip-token"
                except ValueError:
                    continue
        return kinds

    def rows(
        self, telegram_id: int, upto: int | None = None
    ) -> tuple[list[LoggedRow], dict[UUID, str]]:
        """The user's stored rows up to `upto` (default: the head), in log order."""
        kinds = self.streams(telegram_id)
        head = self.log.head() if upto is None else upto
        return self.log.streams(list(kinds), head), kinds

    def events(
        self,
        telegram_id: int,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        types: Collection[str] = (),
        upto: int | None = None,
    ) -> Iterator[TrailEntry]:
        """The user's events, decoded, oldest first: those decided in [since, until] (the
        event's own time; both optional), of these types (names, any case)."""
        wanted = frozenset(t.strip().lower() for t in types if t.strip())
        rows, kinds = self.rows(telegram_id, upto)
        for row in rows:
            if wanted and self.log.name_of(row.topic).lower() not in wanted:
                continue
            entry = self.history.entry(row, telegram_id)
            if entry.at is not None and (
                (since is not None and _utc(entry.at) < since)
                or (until is not None and _utc(entry.at) > until)
            ):
                continue
            event = None if entry.error is not None else self.log.decode(row)
            stream = row.originator_id
            key = stream if isinstance(stream, UUID) else UUID(str(stream))
            yield TrailEntry(kinds.get(key, "other"), entry, event)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
