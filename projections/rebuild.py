"""Rebuilding read models without downtime: shadow copy, catch up, atomic swap.

1. Create a shadow copy of the projection's tables (same schema, suffixed names) and a position
   row for it, at 0.
2. Replay the whole log into it with big batches (the shadow has no readers, and starting from an
   empty table its rows are all in memory: nothing is read back).
3. In one transaction: lock the live and shadow position rows (the live runner waits), catch the
   shadow up to the head and past the live position, drop the live tables, rename the shadow
   tables (and their indexes) to the live names, and move the position (with a new generation,
   which tells every live runner its cached rows are stale). PostgreSQL DDL is transactional and
   SQLite renames inside a transaction, so readers see the old table or the new one, never an
   empty or half-built one.

Reconciliation uses steps 1-2 to get the rows a replay gives at a fixed position, and step 3 to
repair (`--fix`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dianabot.projections.fold import Progress
from dianabot.projections.ports import EventLog
from dianabot.projections.positions import BUILDING, FAILED, OK
from dianabot.projections.registry import PROJECTORS, projector_classes
from dianabot.projections.runner import ProjectionRunner
from dianabot.projections.schema import SHADOW_SEPARATOR, TableSet, table_name
from dianabot.projections.store import ReadStore
from sqlalchemy import delete, select, text, update

log = logging.getLogger(__name__)

SHADOW_PAGE_SIZE = 5000
SHADOW_MAX_BATCH = 2_000_000
"""Events per transaction while building a shadow copy. Nobody reads a shadow copy and a crashed
build is discarded, so it commits rarely: when this many events are folded, or when the changed
rows held in memory reach the runner's `max_dirty_rows`. Rows are then written about once each,
with COPY, instead of once per batch."""

ABANDONED_AFTER = timedelta(hours=1)


class RebuildError(RuntimeError):
    """A shadow copy could not be built or swapped in; the live read model is untouched."""


@dataclass(frozen=True)
class RebuildResult:
    names: tuple[str, ...]
    position: int
    events: int
    seconds: float
    swapped: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "position": self.position,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "swapped": self.swapped,
        }


class ShadowBuild:
    """Shadow copies of some projections, built by their own runner; swap or discard them."""

    def __init__(
        self,
        events: EventLog,
        store: ReadStore,
        names: Sequence[str] | None = None,
        *,
        suffix: str | None = None,
        page_size: int = SHADOW_PAGE_SIZE,
        max_batch: int = SHADOW_MAX_BATCH,
        skip_undecodable: bool = False,
    ) -> None:
        self.event_log = events
        self.store = store
        self.suffix = suffix or f"s{secrets.token_hex(4)}"
        self.runner = ProjectionRunner.for_projectors(
            events,
            store,
            projector_classes(list(names) if names is not None else None),
            suffix=self.suffix,
            page_size=page_size,
            max_batch=max_batch,
            pause_gc=True,
            skip_undecodable=skip_undecodable,
        )
        self.events = 0
        self._open = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(slot.name for slot in self.runner.slots)

    def create(self) -> ShadowBuild:
        self.runner.ensure_schema(state=BUILDING)
        self._open = True
        return self

    def build(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Replay the log into the shadow tables up to `until` (default: the head now)."""
        started = min(slot.position for slot in self.runner.slots)
        reached = self.runner.catch_up(until=until, progress=progress)
        self.events += max(0, reached - started)
        failed = [s for s in self.runner.slots if s.state == FAILED]
        if failed:
            raise RebuildError(
                "; ".join(f"{s.name} failed at {s.failed_position}: {s.last_error}" for s in failed)
            )
        return reached

    def positions(self) -> dict[str, int]:
        return {slot.name: slot.position for slot in self.runner.slots}

    def table(self, base: str) -> Any:
        for slot in self.runner.slots:
            if base in slot.projector.tables:
                return slot.projector.tableset[base]
        raise KeyError(base)

    def swap(self, names: Sequence[str] | None = None) -> int:
        """Swap the shadow copies (all, or these) in for the live tables, atomically."""
        slots = [s for s in self.runner.slots if names is None or s.name in names]
        if not slots:
            return 0
        skipped = sorted({p for s in slots for p in s.skipped})
        if skipped:
            raise RebuildError(
                f"the history cannot be decoded at position(s) {_positions(skipped)}: "
                "nothing is rebuilt from it"
            )
        self.runner.undecodable = None  # from here on an undecodable event stops the swap
        for slot in slots:
            slot.until = None  # a reconciliation may have held it at a position; now: the head
        positions = slots[0].projector.tableset.positions
        live_keys = [s.name for s in slots]
        with self.store.write() as conn:
            statement = select(positions).where(
                positions.c.name.in_(sorted(live_keys + [s.key for s in slots]))
            )
            if self.store.dialect == "postgresql":
                statement = statement.order_by(positions.c.name).with_for_update()
            rows = {row.name: row for row in conn.execute(statement)}
            missing = [k for k in live_keys if k not in rows]
            if missing:
                raise RebuildError(f"no live position for {', '.join(missing)}")
            # Catch the shadow up past the live position and to the head as of now; the live
            # runner cannot move while we hold its position row.
            target: int = max([rows[k].position for k in live_keys] + [self.event_log.head()])
            while min(s.position for s in slots) < target:
                if self.runner.step(until=target, conn=conn) is None:
                    break
            failed = [s for s in slots if s.state == FAILED or s.position < target]
            if failed:
                raise RebuildError(
                    "shadow copy could not reach position "
                    f"{target}: {', '.join(f'{s.name} at {s.position}' for s in failed)}"
                )
            for slot in slots:
                live = rows[slot.name]
                for base in slot.projector.tables:
                    conn.execute(_drop_if_exists(self.store, table_name(base)))
                    self.store.rename(conn, base, table_name(base, self.suffix), base)
                conn.execute(
                    update(positions)
                    .where(positions.c.name == slot.name)
                    .values(
                        position=slot.position,
                        state=OK,
                        failed_position=None,
                        last_error=None,
                        generation=live.generation + 1,
                        version=slot.projector.version,
                        updated_at=datetime.now(UTC),
                    )
                )
                conn.execute(delete(positions).where(positions.c.name == slot.key))
        self.runner.slots = [s for s in self.runner.slots if s not in slots]
        if not self.runner.slots:
            self._open = False
        log.info("swapped in rebuilt %s at position %s", ", ".join(live_keys), target)
        return target

    def discard(self) -> None:
        """Drop whatever is left of the shadow copies (safe to call twice)."""
        if not self.runner.slots:
            return
        for slot in self.runner.slots:
            drop_shadow(self.store, slot.name, self.suffix)
        self.runner.slots = []
        self._open = False


def rebuild(
    events: EventLog,
    store: ReadStore,
    names: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    page_size: int = SHADOW_PAGE_SIZE,
    max_batch: int = SHADOW_MAX_BATCH,
) -> RebuildResult:
    """Rebuild these projections (all when None) from position 0 and swap them in."""
    started = time.perf_counter()
    drop_abandoned_shadows(store)
    shadow = ShadowBuild(events, store, names, page_size=page_size, max_batch=max_batch)
    # Make sure the live rows exist to be swapped (a fresh database has none yet).
    live = ProjectionRunner.for_projectors(events, store, projector_classes(list(shadow.names)))
    live.ensure_schema()
    names = shadow.names
    shadow.create()
    try:
        shadow.build(progress=progress)
        position = shadow.swap()
    except BaseException:
        shadow.discard()
        raise
    return RebuildResult(
        names, position, shadow.events, time.perf_counter() - started, swapped=True
    )


def drop_shadow(store: ReadStore, name: str, suffix: str) -> None:
    projector = PROJECTORS[name]
    tables = TableSet(projector.tables, suffix)
    with store.write() as conn:
        store.drop(conn, tables)
        conn.execute(
            delete(tables.positions).where(
                tables.positions.c.name == f"{name}{SHADOW_SEPARATOR}{suffix}"
            )
        )


def drop_abandoned_shadows(store: ReadStore, older_than: timedelta = ABANDONED_AFTER) -> list[str]:
    """Drop shadow copies a crashed rebuild or reconciliation left behind (not updated lately)."""
    tables = TableSet(())
    if tables.positions.name not in store.table_names():
        return []
    cutoff = datetime.now(UTC) - older_than
    with store.read() as conn:
        rows = list(
            conn.execute(
                select(tables.positions.c.name, tables.positions.c.updated_at).where(
                    tables.positions.c.name.like(f"%{SHADOW_SEPARATOR}%")
                )
            )
        )
    dropped = []
    for row in rows:
        if row.updated_at is not None and row.updated_at > cutoff:
            continue
        name, _, suffix = row.name.partition(SHADOW_SEPARATOR)
        if name in PROJECTORS and suffix:
            drop_shadow(store, name, suffix)
            dropped.append(row.name)
            log.info("dropped abandoned shadow copy %s", row.name)
    return dropped


def _positions(positions: Sequence[int], most: int = 10) -> str:
    shown = ", ".join(str(p) for p in positions[:most])
    return shown if len(positions) <= most else f"{shown} and {len(positions) - most} more"


def _drop_if_exists(store: ReadStore, name: str) -> Any:
    quoted = '"' + name.replace('"', '""') + '"'
    return text(f"DROP TABLE IF EXISTS {quoted}")
