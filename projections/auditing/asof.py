"""State at a past moment, by replaying only the events committed by then.

"By then" is by **commit** time: an event's own timestamp is when it was decided, which is not
always log order (a group-commit batch, a slow transaction). The log's positions are in commit
order, so "committed by `when`" is a prefix of the log, 1..P, where P is what the `CommitTimes`
port answers. The replay reuses the read models' own projectors and fold (`projections.fold`)
with P as the stop position, into rows held in memory: nothing is read from today's read-model
tables and nothing is written.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from dianabot.domain.ids import player_id
from dianabot.domain.rules import level_for
from dianabot.projections.badges_held import BadgesHeldProjector
from dianabot.projections.base import Projector, Row
from dianabot.projections.fold import Batch, Progress, corrupt_detail, fold, gc_paused
from dianabot.projections.leaderboard import ALL_TIME, LeaderboardProjector, week_of
from dianabot.projections.player_points import PlayerPointsProjector
from dianabot.projections.player_points import new_row as new_points_row
from dianabot.projections.ports import EventLog, LoggedRow
from dianabot.projections.positions import Slot
from dianabot.projections.schema import TableSet

PAGE_SIZE = 5_000
NO_LIMIT = 2**62


class CommitTimes(Protocol):
    """When each position of the log was committed (the event store's chain records it)."""

    def last_position_committed_by(self, when: datetime) -> int:
        """The highest log position committed at or before `when` (0 if none)."""
        ...


class FutureMoment(ValueError):
    """An as-of moment after now: the history does not know it yet."""


def as_utc(moment: datetime) -> datetime:
    """A naive moment is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def position_as_of(times: CommitTimes, when: datetime, now: datetime) -> int:
    """The last position committed by `when`; `FutureMoment` for a moment after `now`."""
    when = as_utc(when)
    if when > as_utc(now):
        raise FutureMoment(
            f"{when.isoformat()} is in the future (now is {as_utc(now).isoformat()})"
        )
    return times.last_position_committed_by(when)


def in_memory(cls: type[Projector]) -> Projector:
    """A projector whose rows live in memory only (complete from position 0, never loaded)."""
    return cls(TableSet(cls.tables))


def replay_rows(
    log: EventLog, rows: list[LoggedRow], projectors: list[Projector], upto: int
) -> dict[int, str]:
    """Fold these rows (a few streams, in log order) into the projectors up to `upto`; an
    undecodable event is skipped and returned by position (it is reported, never guessed)."""
    handlers: dict[str, list[Any]] = {}
    for projector in projectors:
        for name, handler in projector.handlers.items():
            handlers.setdefault(name, []).append(handler)
    skipped: dict[int, str] = {}
    for row in rows:
        if row.id > upto:
            break
        name = log.name_of(row.topic)
        wanting = handlers.get(name)
        if not wanting:
            continue
        try:
            event = log.decode(row)
        except Exception as error:
            skipped[row.id] = corrupt_detail(row, name, error)
            continue
        for handler in wanting:
            handler(event, row.id)
    return skipped


@dataclass(frozen=True)
class BalanceAsOf:
    """One user's besitos, level and badges as replayed to `position`."""

    telegram_id: int
    when: datetime
    position: int
    registered: bool
    balance: int
    lifetime: int
    level: int
    badges: tuple[str, ...]
    events: int
    """The user's events replayed (at or before `position`)."""
    skipped: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "telegram_id": self.telegram_id,
            "as_of": self.when.isoformat(),
            "position": self.position,
            "registered": self.registered,
            "balance": self.balance,
            "lifetime": self.lifetime,
            "level": self.level,
            "level_name": level_for(self.lifetime).name if self.lifetime >= 0 else None,
            "badges": list(self.badges),
            "events": self.events,
            "undecodable": {str(k): v for k, v in sorted(self.skipped.items())},
        }


def balance_as_of(
    log: EventLog, rows: list[LoggedRow], telegram_id: int, when: datetime, position: int
) -> BalanceAsOf:
    """Replay the user's rows (their trail, in log order) up to `position` through the
    `player_points` and `badges_held` projectors."""
    points, held = in_memory(PlayerPointsProjector), in_memory(BadgesHeldProjector)
    mine = [r for r in rows if r.id <= position]
    skipped = replay_rows(log, mine, [points, held], position)
    row = points.rows["player_points"].get(player_id(telegram_id).int)
    registered = row is not None and row.get("telegram_id") is not None
    row = row or new_points_row(player_id(telegram_id))
    badges = sorted(
        str(r["badge_slug"])
        for r in held.rows["badges_held"].snapshot().values()
        if r["held"] and r["telegram_id"] == telegram_id
    )
    return BalanceAsOf(
        telegram_id, as_utc(when), position, registered, int(row["balance"]),
        int(row["lifetime"]), int(row["level"]), tuple(badges), len(mine), skipped,
    )  # fmt: skip


class _Registrations(Projector):
    """Who each player is (Telegram id, name as registered), for the board's rows: memory only,
    never a table of its own."""

    name = "registrations"
    tables = ()

    def __init__(self) -> None:
        super().__init__(TableSet(()))
        self.people: dict[int, tuple[int, str | None]] = {}

    def on_PlayerRegistered(self, event: Any, position: int) -> None:
        self.people[event.originator_id.int] = (event.telegram_id, event.display_name)


@dataclass(frozen=True)
class LeaderboardAsOf:
    when: datetime
    position: int
    period: str
    rows: list[dict[str, Any]]
    events: int
    """Events read (the log up to `position`)."""
    players: int
    """Players with besitos on this board."""
    skipped: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.when.isoformat(),
            "position": self.position,
            "period": self.period,
            "events": self.events,
            "players": self.players,
            "rows": self.rows,
            "undecodable": {str(k): v for k, v in sorted(self.skipped.items())},
        }


def leaderboard_as_of(
    log: EventLog,
    when: datetime,
    position: int,
    *,
    week: bool = False,
    limit: int = 10,
    progress: Progress | None = None,
) -> LeaderboardAsOf:
    """The leaderboard (all time, or the ISO week of `when`) as the log up to `position` makes
    it: the `leaderboard` projector folded in memory by the read models' own fold, with the
    stop position as the batch's end; ranked as `/top` ranks (points, then Telegram id)."""
    board = in_memory(LeaderboardProjector)
    people = _Registrations()
    slots = [Slot(board, board.name, stop=position), Slot(people, people.name, stop=position)]
    batch = Batch(0, position, slots=slots)
    skipped: dict[int, str] = {}
    if position > 0:
        with gc_paused():  # as a rebuild does: millions of acyclic objects, one big cache
            fold(
                batch, log, PAGE_SIZE, NO_LIMIT,
                progress=None if progress is None else (progress, position), undecodable=skipped,
            )  # fmt: skip
    period = week_of(as_utc(when)) if week else ALL_TIME
    rows: dict[Hashable, Row] = board.rows["leaderboard"].snapshot()
    ranked: list[tuple[int, int, str | None]] = []
    for key, row in rows.items():
        if not isinstance(key, tuple) or key[0] != period:
            continue
        telegram_id, name = people.people.get(row["player_id"].int, (0, None))
        ranked.append((int(row["points"]), telegram_id, name))
    ranked.sort(key=lambda r: (-r[0], r[1]))
    top = [
        {"rank": rank, "telegram_id": tid, "display_name": name, "points": points}
        for rank, (points, tid, name) in enumerate(ranked[:limit], start=1)
    ]
    return LeaderboardAsOf(as_utc(when), position, period, top, batch.read, len(ranked), skipped)


class EventTimeBound:
    """`CommitTimes` from the events' own timestamps, for a store that records no commit
    times: an event is committed after it was decided and positions follow commit order, so
    nothing from the first event decided after `when` on was committed by `when`. That is an
    upper bound: it can include an event decided just before `when` but committed after it
    (milliseconds, in a group-commit batch)."""

    def __init__(self, log: EventLog, page_size: int = PAGE_SIZE) -> None:
        self.log = log
        self.page_size = page_size

    def last_position_committed_by(self, when: datetime) -> int:
        when = as_utc(when)
        last = 0
        for page in self.log.pages(0, self.log.head(), self.page_size):
            for row in page:
                try:
                    at = getattr(self.log.decode(row), "timestamp", None)
                except Exception:
                    at = None  # undecodable: no time of its own, it cannot end the prefix
                if isinstance(at, datetime) and as_utc(at) > when:
                    return last
                last = row.id
        return last
