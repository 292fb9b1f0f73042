"""The event history as operators read it: the last events of the log, of one user or of some
types, and the new ones as they are written (`dianabot events tail [--follow]`).

Served from the event store through the read side's `EventLog` port (pages of notifications,
one user's streams, a waker), never from a read model: what is shown is what was recorded. Rows
are filtered by type on their topic (no decoding); only the events shown are decoded.

One user's events are those of their streams, whose ids follow from their Telegram id: the
player, a story progress per story, a badge award per badge. The stories and badges are found
in the log itself (`StoryCreated`, `BadgeDefined`, through the application's scanner by topic),
so the history needs no read model.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from dianabot.domain.badge import Badge
from dianabot.domain.catalogue import INITIAL_BADGES
from dianabot.domain.ids import badge_award_id, player_id, progress_id
from dianabot.domain.personal import PersonalText
from dianabot.domain.story_versions import StoryVersions
from dianabot.projections.ports import EventLog, LoggedRow, StoredRow

Scan = Callable[[Sequence[type]], Iterable[StoredRow]]
"""The notifications of some event classes (the application's `scan_notifications`)."""

PAGE = 1_000
FIRST_WINDOW = 256
LARGEST_WINDOW = 100_000
SUMMARY_WIDTH = 120
VALUE_WIDTH = 40
JSON_VALUE_WIDTH = 200

_NOT_FIELDS = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "causation", "actor"}
)
_DEFINITIONS = frozenset({"StoryCreated", "BadgeDefined"})
"""Events that add streams a user may have (a story's progress, a badge's award)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded event: where it is in the log, when, what, on which stream, why, by whom."""

    position: int
    type: str
    stream: UUID
    version: int
    at: datetime | None = None
    user: int | None = None
    causation: str | None = None
    actor: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the event could not be decoded (its other columns are then unknown)."""

    def summary(self, width: int = SUMMARY_WIDTH) -> str:
        """The event's own fields, short: `amount=10, source=reaction, ...`."""
        if self.error is not None:
            return f"undecodable: {self.error}"[:width]
        parts = [f"{key}={_short(value, VALUE_WIDTH)}" for key, value in self.fields.items()]
        text = ", ".join(parts)
        return text if len(text) <= width else text[: width - 1] + "…"

    def erased_fields(self) -> list[str]:
        """The personal fields shown as erased (their user was forgotten)."""
        return [
            key
            for key, value in self.fields.items()
            if type(value) is PersonalText and value.erased
        ]

    def to_dict(self) -> dict[str, Any]:
        erased = self.erased_fields()
        return {
            "position": self.position,
            "at": None if self.at is None else self.at.isoformat(),
            "type": self.type,
            "stream": str(self.stream),
            "version": self.version,
            "user": self.user,
            "causation": self.causation,
            "actor": self.actor,
            "summary": self.summary(),
            "fields": {key: _jsonable(value) for key, value in self.fields.items()},
            "erased": bool(erased),
            "erased_fields": erased,
            "error": self.error,
        }


class EventHistory:
    """Reads the history (see the module docstring)."""

    def __init__(self, log: EventLog, scan: Scan) -> None:
        self.log = log
        self.scan = scan

    def head(self) -> int:
        return self.log.head()

    def tail(
        self,
        *,
        user: int | None = None,
        types: Collection[str] = (),
        limit: int = 20,
        upto: int | None = None,
    ) -> list[HistoryEntry]:
        """The last `limit` events up to `upto` (default: the head), oldest first: all, or one
        user's, or of these types (names, any case)."""
        if limit <= 0:
            return []
        head = self.log.head() if upto is None else upto
        wanted = _names(types)
        if user is not None:
            rows = [
                r for r in self.log.streams(self.user_streams(user), head) if self._is(r, wanted)
            ]
            return [self.entry(r, user) for r in rows[-limit:]]
        found: list[LoggedRow] = []
        window, upper = FIRST_WINDOW, head
        while upper > 0 and len(found) < limit:
            lower = max(0, upper - max(window, limit))
            chunk = [r for page in self.log.pages(lower, upper, PAGE) for r in page]
            found = [r for r in chunk if self._is(r, wanted)] + found
            upper, window = lower, min(window * 2, LARGEST_WINDOW)
        return [self.entry(r) for r in found[-limit:]]

    def since(
        self, after: int, *, user: int | None = None, types: Collection[str] = ()
    ) -> tuple[list[HistoryEntry], int]:
        """The events after position `after` (of one user, of these types), and the position
        read up to (where to go on from)."""
        head = self.log.head()
        if head <= after:
            return [], after
        wanted = _names(types)
        rows = [r for page in self.log.pages(after, head, PAGE) for r in page]
        if user is None:
            return [self.entry(r) for r in rows if self._is(r, wanted)], head
        streams = self.user_streams(user)
        mine = [r for r in rows if _stream(r) in streams and self._is(r, wanted)]
        return [self.entry(r, user) for r in mine], head

    def user_streams(self, telegram_id: int) -> set[UUID]:
        """Every stream that may hold this user's events (see the module docstring)."""
        badges = {spec.slug for spec in INITIAL_BADGES}
        stories: set[str] = set()
        definitions = [Badge.BadgeDefined, StoryVersions.StoryCreated]  # type: ignore[attr-defined]
        for row in self.scan(definitions):
            event = self.log.decode(row)
            slug = getattr(event, "slug", None)
            if self.log.name_of(row.topic) == "BadgeDefined" and isinstance(slug, str):
                badges.add(slug)
            elif isinstance(slug, str):
                stories.add(slug)
        streams = {player_id(telegram_id)}
        streams |= {progress_id(telegram_id, slug) for slug in stories}
        streams |= {badge_award_id(slug, telegram_id) for slug in badges}
        return streams

    def entry(self, row: LoggedRow, user: int | None = None) -> HistoryEntry:
        """One row, decoded (an undecodable one is shown with its error)."""
        name = self.log.name_of(row.topic)
        stream = _stream(row)
        try:
            event = self.log.decode(row)
        except Exception as error:
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            return HistoryEntry(
                row.id, name, stream, row.originator_version, user=user,
                error=f"{type(error).__name__}: {text}" if text else type(error).__name__,
            )  # fmt: skip
        values = {k: v for k, v in vars(event).items() if k not in _NOT_FIELDS}
        telegram_id = values.get("telegram_id")
        if user is None and isinstance(telegram_id, int) and not isinstance(telegram_id, bool):
            user = telegram_id
        return HistoryEntry(
            position=row.id,
            type=name,
            stream=stream,
            version=row.originator_version,
            at=getattr(event, "timestamp", None),
            user=user,
            causation=getattr(event, "causation", None),
            actor=getattr(event, "actor", None),
            fields=values,
        )

    def _is(self, row: LoggedRow, wanted: frozenset[str]) -> bool:
        return not wanted or self.log.name_of(row.topic).lower() in wanted


def _stream(row: StoredRow) -> UUID:
    stream = row.originator_id
    return stream if isinstance(stream, UUID) else UUID(str(stream))


def _names(types: Collection[str]) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in types if t.strip())


def _short(value: Any, width: int) -> str:
    if type(value) is PersonalText:
        value = value.shown()
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _jsonable(value: Any) -> Any:
    if type(value) is PersonalText:  # null when erased (the entry says `erased: true`)
        value = value.text
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _short(value, JSON_VALUE_WIDTH)
    if isinstance(value, list | tuple | set | frozenset) and len(value) <= 20:
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        if all(isinstance(v, str | int | float | bool) or v is None for v in items):
            return list(items)
    return _short(str(value), JSON_VALUE_WIDTH)
