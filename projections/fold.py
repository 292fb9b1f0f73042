"""One batch: fold a stretch of the log into the projectors, then write rows and positions in
one transaction.

`fold` reads pages of notifications, skips events no projector wants by their topic (without
decoding them), decodes each remaining event once and calls every interested projector's handler;
the projectors change cached rows in memory. A projector that raises on an event is stopped just
before it (its earlier events are kept) and marked broken; the others go on.

`flush` writes every changed row and every projector's new position in one transaction, and only
for projectors whose position in the database is still the one the batch started from (a crash,
a concurrent runner, a rebuild swap or a reconciliation fix in between make it start over).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from dianabot.projections.ports import EventLog
from dianabot.projections.positions import MAX_RETRY_DELAY, Slot, lock_positions, outcome
from dianabot.projections.store import ReadStore
from sqlalchemy import Connection, bindparam, update

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Told (position reached, target) after each page."""


@dataclass
class Batch:
    """What one step read and applied (for progress reports and tests)."""

    start: int
    end: int
    read: int = 0
    applied: int = 0
    slots: list[Slot] = field(default_factory=list)


FlushHook = Callable[[Connection, Batch], None]


def fold(
    batch: Batch,
    events: EventLog,
    page_size: int,
    max_dirty_rows: int,
    progress: tuple[Progress, int] | None = None,
    undecodable: dict[int, str] | None = None,
) -> None:
    """Apply the log from `batch.start` to `batch.end` to the batch's projectors, in memory.

    Stops early (lowering `batch.end`) when the changed rows held in memory exceed
    `max_dirty_rows`, so that the next batch goes on from there.

    An event that cannot be decoded stops every projector that wanted it; with `undecodable`
    (a reconciliation's replay, which must go on to find every other difference) it is
    skipped instead, noted there by position, and in each such slot's `skipped`.
    """
    interest: dict[str, list[Slot]] = {}
    for slot in batch.slots:
        for handled in slot.projector.handlers:
            interest.setdefault(handled, []).append(slot)
    dispatch = {
        name: [(slot, slot.projector.handlers[name]) for slot in slots]
        for name, slots in interest.items()
    }
    # Usually every projector starts where the batch starts and may go to its end: then no
    # event needs checking against each projector's own range.
    uniform = all(s.position == batch.start and s.stop >= batch.end for s in batch.slots)
    decode = events.decode
    name_of = events.name_of
    names: dict[str, str] = {}
    applied = 0
    for page in events.pages(batch.start, batch.end, page_size):
        batch.read += len(page)
        decoded: list[tuple[int, str, Any]] = []
        for notification in page:
            topic = notification.topic
            name = names.get(topic)
            if name is None:
                name = name_of(topic)
                names[topic] = name
            if name not in interest:
                continue
            try:
                event = decode(notification)
            except Exception as error:  # undecodable: every projector that wanted it stops
                wanting = [
                    slot
                    for slot in interest[name]
                    if slot.position < notification.id <= slot.stop and slot.broken is None
                ]
                if undecodable is not None:
                    if wanting:
                        undecodable[notification.id] = corrupt_detail(notification, name, error)
                    for slot in wanting:
                        slot.skipped.append(notification.id)
                    continue
                for slot in wanting:
                    _break(slot, notification.id, name, notification, error)
                continue
            decoded.append((notification.id, name, event))
        for slot in batch.slots:
            if slot.broken is None:
                slot.projector.prefetch(decoded)
        for position, name, event in decoded:
            for slot, handler in dispatch[name]:
                if slot.broken or not (uniform or slot.position < position <= slot.stop):
                    continue
                try:
                    handler(event, position)
                except Exception as error:
                    _break(slot, position, name, event, error)
                else:
                    applied += 1
        if progress is not None:
            progress[0](page[-1].id, progress[1])
        if page[-1].id < batch.end and _too_dirty(batch, max_dirty_rows):
            batch.end = page[-1].id  # write what we have; the next batch goes on from here
            break
    batch.applied += applied


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a shadow copy's batch is folded.

    A shadow build (rebuild, reconciliation) folds up to millions of events per batch into
    row caches that stay alive the whole batch; the fold allocates millions of short-lived,
    acyclic objects (rows read, events, cached rows) that reference counting frees, and every
    generation-2 collection those allocations trigger re-scans the caches. Measured on
    `bench/projections.py`'s rebuild (200,000 events, paired runs in one session): 3.3 s
    median with the pause against 4.5 s without. The collector is process-wide, so the pause
    is kept to shadow builds (`ProjectionRunner(pause_gc=True)`), which run in maintenance
    commands and reconciliation; the live runner's small batches do not pause it. Nested and
    concurrent pauses count: the collector resumes (if it was on) when the last one ends, and
    cycles made meanwhile are collected then.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        _gc_pauses += 1
        if _gc_pauses == 1:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _too_dirty(batch: Batch, max_dirty_rows: int) -> bool:
    return sum(slot.projector.dirty() for slot in batch.slots) > max_dirty_rows


def corrupt_detail(row: Any, name: str, error: Exception) -> str:
    """One line naming a stored event that cannot be decoded, and why."""
    where = f"{name} of {row.originator_id} v{row.originator_version}"
    return f"{where} cannot be decoded: {type(error).__name__}: {_first_line(error)}"


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else ""


def _break(slot: Slot, position: int, name: str, event: Any, error: Exception) -> None:
    where = f"{name} of {event.originator_id} v{event.originator_version} at {position}"
    slot.broken = (position, f"{where}: {type(error).__name__}: {_first_line(error)}")
    # One line for operators (the CLI shows it); the traceback is for developers, at DEBUG.
    log.error("projection %s stopped before %s", slot.key, slot.broken[1])
    log.debug("projection %s failed on %s", slot.key, where, exc_info=error)


def flush(
    batch: Batch,
    store: ReadStore,
    conn: Connection | None,
    *,
    max_cached_rows: int,
    on_flush: FlushHook | None = None,
) -> bool:
    """Write the batch's changed rows and positions in one transaction (`conn`'s, if given:
    then nothing commits here). Returns False when some projector's position moved under
    the runner (its batch is dropped and the runner must re-read the positions)."""
    positions = batch.slots[0].projector.tableset.positions
    context = nullcontext(conn) if conn is not None else store.write()
    committed: list[tuple[Slot, dict[str, Any]]] = []
    in_step = True
    with context as wconn:
        current = lock_positions(store, wconn, batch.slots, [s.key for s in batch.slots])
        for slot in batch.slots:
            row = current.get(slot.key)
            if row is None or (row.position, row.generation) != (slot.position, slot.generation):
                log.info("projection %s moved under this runner; starting over", slot.key)
                slot.projector.reset()
                in_step = False
                continue
            values = outcome(slot, max(slot.position, min(batch.end, slot.stop)))
            if slot.broken is None:
                for base, (new, changed) in slot.projector.changed_rows().items():
                    table = slot.projector.tableset[base]
                    store.insert(wconn, table, new)
                    key = slot.projector.rows[base].key_columns
                    store.upsert(wconn, table, key, changed)
            committed.append((slot, values))
        if committed:  # every projector's position in one statement (one round trip)
            wconn.execute(
                update(positions)
                .where(positions.c.name == bindparam("row_name"))
                .values({name: bindparam(f"row_{name}") for name in committed[0][1]}),
                [
                    {"row_name": slot.key, **{f"row_{k}": v for k, v in values.items()}}
                    for slot, values in committed
                ],
            )
        if on_flush is not None:
            on_flush(wconn, batch)
    for slot, values in committed:
        slot.position = values["position"]
        slot.state = values["state"]
        slot.failed_position = values["failed_position"]
        slot.last_error = values["last_error"]
        if slot.broken is not None:
            slot.projector.reset()  # its cache holds half of the failing event
            slot.failures += 1
            slot.errors += 1
            slot.retry_at = time.monotonic() + min(2.0**slot.failures, MAX_RETRY_DELAY)
        else:
            slot.projector.flushed()
            slot.projector.trim(max_cached_rows)
    return in_step
