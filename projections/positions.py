"""Where each projection stands: the `projection_positions` table and a runner's view of it.

One row per projection (and per shadow copy): the last position folded, its state (ok, failed,
building, outdated), the failing event and error, a generation that changes when the rows were
replaced under a runner (a rebuild's swap, a reconciliation's fix), and the projector's version.
Rows and positions commit in one transaction (`fold.flush`), so a position is never ahead of or
behind its rows; any process can read it (`status`), and lag is the head minus the position.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dianabot.projections.base import Projector
from dianabot.projections.store import ReadStore
from sqlalchemy import Connection, Table, insert, select, update
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
BUILDING = "building"
OUTDATED = "outdated"

MAX_RETRY_DELAY = 300.0
"""The longest wait before a failed projector is retried (the backoff doubles up to it)."""


@dataclass
class Slot:
    """One projector in a runner, with where it stands (as last read from or written to the
    database) and, during a batch, what it may and did do."""

    projector: Projector
    key: str
    position: int = 0
    generation: int = 0
    state: str = OK
    failed_position: int | None = None
    last_error: str | None = None
    failures: int = 0
    """Consecutive failed attempts (0 once it succeeds)."""
    errors: int = 0
    """Failed attempts ever, in this process (metrics)."""
    retry_at: float = 0.0
    until: int | None = None
    """A ceiling for this projector alone (a reconciliation compares each at its own position)."""
    stop: int = 0
    broken: tuple[int, str] | None = None
    skipped: list[int] = field(default_factory=list)
    """Undecodable events a tolerant replay (reconciliation's) went past: see `fold.fold`."""

    @property
    def name(self) -> str:
        return self.projector.name


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    position: int
    head: int
    state: str
    last_error: str | None
    failed_position: int | None
    generation: int
    updated_at: datetime | None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "state": self.state,
            "last_error": self.last_error,
            "failed_position": self.failed_position,
            "generation": self.generation,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def positions_table(slots: Sequence[Slot]) -> Table:
    return slots[0].projector.tableset.positions


def ensure_schema(store: ReadStore, slots: Sequence[Slot], state: str = OK) -> None:
    """Create missing tables and position rows. Safe to call from any number of processes
    (one that loses a creation race retries and finds the winner's tables)."""
    for attempt in range(3):
        try:
            _ensure_schema(store, slots, state)
            return
        except DBAPIError:
            if attempt == 2:
                raise
            log.info("schema creation raced with another process; retrying")
            time.sleep(0.1 * (attempt + 1))


def _ensure_schema(store: ReadStore, slots: Sequence[Slot], state: str) -> None:
    for slot in slots:
        store.create(slot.projector.tableset)
    if not slots:
        return
    positions = positions_table(slots)
    with store.write() as conn:
        existing = {
            row.name: row
            for row in conn.execute(
                select(positions.c.name, positions.c.version).where(
                    positions.c.name.in_([s.key for s in slots])
                )
            )
        }
        for slot in slots:
            row = existing.get(slot.key)
            if row is None:
                conn.execute(
                    insert(positions).values(
                        name=slot.key,
                        position=0,
                        state=state,
                        generation=0,
                        version=slot.projector.version,
                        updated_at=now(),
                    )
                )
            elif row.version != slot.projector.version:
                log.warning(
                    "projection %s was built by version %s of its projector; this is %s: "
                    "rebuild it (dianabot projections rebuild %s)",
                    slot.name,
                    row.version,
                    slot.projector.version,
                    slot.name,
                )
                conn.execute(
                    update(positions).where(positions.c.name == slot.key).values(state=OUTDATED)
                )


class ReadModelsMissing(RuntimeError):
    """A use that only reads found read models that were never built (no position row, or no
    table): it names them, and creates nothing (building them is `ensure_schema`'s job)."""

    def __init__(self, names: Sequence[str], *, none_built: bool) -> None:
        self.names = tuple(names)
        self.none_built = none_built
        if none_built:
            which = "the read models have"
        elif len(self.names) == 1:
            which = f"the read model {self.names[0]} has"
        else:
            which = f"the read models {', '.join(self.names)} have"
        super().__init__(f"{which} not been built yet")


def check_schema(store: ReadStore, slots: Sequence[Slot]) -> None:
    """Raise `ReadModelsMissing` naming the slots whose tables or position row do not exist.

    Only reads (the catalogue and the positions table): the read-only counterpart of
    `ensure_schema`, for commands that must not create anything.
    """
    if not slots:
        return
    existing = store.table_names()
    if positions_table(slots).name not in existing:
        raise ReadModelsMissing([s.key for s in slots], none_built=True)
    rows = read_positions(store, slots)
    missing = [
        slot.key
        for slot in slots
        if slot.key not in rows
        or any(t.name not in existing for t in slot.projector.tableset.tables.values())
    ]
    if missing:
        raise ReadModelsMissing(missing, none_built=len(missing) == len(slots))


def read_positions(store: ReadStore, slots: Sequence[Slot]) -> dict[str, Any]:
    """The slots' position rows by key, as committed now."""
    positions = positions_table(slots)
    with store.read() as conn:
        return {
            row.name: row
            for row in conn.execute(
                select(positions).where(positions.c.name.in_([s.key for s in slots]))
            )
        }


def adopt(slots: Sequence[Slot], rows: Mapping[str, Any], *, synced: bool) -> None:
    """Take over the positions in the database; a slot whose position or generation moved
    (or every slot, when not `synced` yet) forgets its cached rows."""
    for slot in slots:
        row = rows.get(slot.key)
        if row is None:
            raise RuntimeError(f"projection {slot.key} has no position row: ensure_schema()")
        if (row.position, row.generation) != (slot.position, slot.generation) or not synced:
            slot.projector.reset(complete=row.position == 0)
            slot.position, slot.generation = row.position, row.generation
        if (row.state, row.failed_position) != (slot.state, slot.failed_position):
            slot.failures = 0 if row.state != FAILED else max(slot.failures, 1)
            slot.retry_at = 0.0 if row.state != FAILED else slot.retry_at
        slot.state, slot.failed_position, slot.last_error = (
            row.state,
            row.failed_position,
            row.last_error,
        )


def statuses(slots: Sequence[Slot], rows: Mapping[str, Any], head: int) -> list[ProjectionStatus]:
    result = []
    for slot in slots:
        row = rows.get(slot.key)
        if row is None:
            result.append(ProjectionStatus(slot.name, 0, head, "missing", None, None, 0, None))
            continue
        # A row written by another version of the projector is outdated, whether or not a
        # runner (`ensure_schema`) has marked it yet: a read-only status marks nothing.
        state = OUTDATED if row.version != slot.projector.version else row.state
        result.append(
            ProjectionStatus(
                slot.name,
                row.position,
                head,
                state,
                row.last_error,
                row.failed_position,
                row.generation,
                row.updated_at,
            )
        )
    return result


def lock_positions(
    store: ReadStore, conn: Connection, slots: Sequence[Slot], keys: list[str]
) -> dict[str, Any]:
    """These position rows, locked for this transaction on PostgreSQL (in name order, so two
    runners never deadlock); SQLite's write transaction holds the whole file already."""
    positions = positions_table(slots)
    statement = select(positions).where(positions.c.name.in_(sorted(keys)))
    if store.dialect == "postgresql":
        statement = statement.order_by(positions.c.name).with_for_update()
    return {row.name: row for row in conn.execute(statement)}


def outcome(slot: Slot, reached: int) -> dict[str, Any]:
    """The position row after a batch: advanced, failed (position kept), or recovered."""
    values: dict[str, Any] = {"updated_at": now()}
    if slot.broken is not None:
        failed_at, error = slot.broken
        values.update(
            position=slot.position,
            state=FAILED,
            failed_position=failed_at,
            last_error=error,
        )
        return values
    values["position"] = reached
    if slot.state == FAILED and slot.failed_position is not None:
        if reached >= slot.failed_position:
            values.update(state=OK, failed_position=None, last_error=None)
            slot.failures = 0
            log.info("projection %s recovered past %s", slot.key, slot.failed_position)
        else:
            values.update(
                state=FAILED, failed_position=slot.failed_position, last_error=slot.last_error
            )
    else:
        values.update(state=slot.state, failed_position=None, last_error=None)
    return values


def now() -> datetime:
    return datetime.now(UTC)
