"""Export and import of the whole event store as JSON Lines, with the chain (`chain`).

Why: a copy an auditor can read with any tool, and a way to move a store between databases
(SQLite <-> PostgreSQL) that proves the copy is the original: the links travel with the events
and are checked again on the way in, with the same key.

Format (one JSON object per line; streamed both ways, so memory stays constant):
    {"dianabot_export": 1, "store": "sqlite", "head": 1234}
    {"position": 1, "originator_id": "<uuid>", "originator_version": 1, "topic": "...",
     "state": "<the stored JSON, as text>", "link": {"prev_position": 0,
     "committed_at": <µs since the epoch>, "digest": "<hex>"}}
                                  (one per event, in order; "link": null before the chain)
    {"tracking": "<subscriber>", "position": 1200}                   (subscribers' positions)
    {"end": true, "events": 1234, "tracking": 5}
Snapshots are not exported: they are derived (an imported store loads aggregates by replay and
snapshots them again). `state` is the stored bytes as UTF-8 text (`state_b64` when they are not).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from dianabot.adapters.eventstore.chain import (
    GENESIS,
    PAGE,
    ChainStore,
    KeyFile,
    Link,
    Row,
    chain_store_of,
    key_of,
    mac,
)
from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder

FORMAT_VERSION = 1
BATCH = 2_000


class ImportRefused(RuntimeError):
    """The export cannot be imported: `line` (1-based) names where, the message why."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class StoreNotEmpty(RuntimeError):
    """An import goes into an empty store only."""


@dataclass
class ExportSummary:
    events: int = 0
    tracking: int = 0
    head: int = 0


def tracking_positions(app: Any) -> list[tuple[str, int]]:
    """Every subscriber's position (the library's tracking table)."""
    recorder = app.recorder
    if isinstance(recorder, SQLiteProcessRecorder):
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT application_name, MAX(notification_id) FROM tracking "
                "WHERE application_name != ? GROUP BY application_name ORDER BY 1",
                (recorder.table_migration_identifier,),
            )
            return [(row[0], row[1]) for row in cursor.fetchall()]
    if isinstance(recorder, PostgresProcessRecorder):
        with recorder.datastore.transaction(commit=False) as curs:
            curs.execute(
                f'SELECT application_name, MAX(notification_id) AS n FROM "'
                f'{recorder.datastore.schema}"."{recorder.tracking_table_name}" '
                "WHERE application_name != %s GROUP BY application_name ORDER BY 1",
                (recorder.table_migration_identifier,),
            )
            return [(row["application_name"], row["n"]) for row in curs.fetchall()]
    names = getattr(recorder, "_tracking_table", {})
    return sorted((name, int(position)) for name, position in dict(names).items())


def export_lines(app: Any, progress: Callable[[int, int], None] | None = None) -> Iterator[str]:
    """The store as export lines (see module docstring), read page by page."""
    store = chain_store_of(app)
    head = store.event_head()
    yield json.dumps({"dianabot_export": FORMAT_VERSION, "store": store.kind, "head": head})
    summary = ExportSummary(head=head)
    position = 1
    while position <= head:
        stop = min(position + PAGE, head + 1)
        links = {link.position: link for link in store.links(position, stop)}
        for row in store.events(position, stop):
            link = links.get(row.position)
            yield _event_line(row.position, row.originator_id, row, link)
            summary.events += 1
        position = stop
        if progress is not None:
            progress(summary.events, head)
    for name, tracked in tracking_positions(app):
        yield json.dumps({"tracking": name, "position": tracked})
        summary.tracking += 1
    yield json.dumps({"end": True, "events": summary.events, "tracking": summary.tracking})


def _event_line(position: int, raw_id: bytes, row: Any, link: Link | None) -> str:
    originator_id = str(UUID(bytes=raw_id)) if len(raw_id) == 16 else raw_id.decode()
    line: dict[str, Any] = {
        "position": position,
        "originator_id": originator_id,
        "originator_version": row.originator_version,
        "topic": row.topic,
    }
    try:
        line["state"] = row.state.decode()
    except UnicodeDecodeError:
        line["state_b64"] = base64.b64encode(row.state).decode()
    line["link"] = (
        {
            "prev_position": link.prev_position,
            "committed_at": link.committed_at,
            "digest": link.digest.hex(),
        }
        if link is not None
        else None
    )
    return json.dumps(line, ensure_ascii=False)


# ----- import -------------------------------------------------------------------------------


@dataclass
class Imported:
    position: int
    stored: StoredEvent
    link: Link | None


def parse(lines: Iterable[str], key: bytes) -> Iterator[Imported | Tracking]:
    """The export's events and tracking records, each checked as it is read (its link
    against the one before it); raises `ImportRefused` at the first line that fails."""
    number = 0
    header_seen = end_seen = False
    events = tracked = 0
    prev_position, prev_digest = 0, GENESIS
    last_position = 0
    chained = False
    for number, text in enumerate(lines, start=1):  # noqa: B007  (used after the loop)
        if end_seen:
            raise ImportRefused(number, "text after the end line")
        try:
            line = json.loads(text)
        except ValueError as error:
            raise ImportRefused(number, f"not JSON ({error.args[0]})") from None
        if not isinstance(line, dict):
            raise ImportRefused(number, "not a JSON object")
        if not header_seen:
            if line.get("dianabot_export") != FORMAT_VERSION:
                raise ImportRefused(number, "not a dianabot export (no version 1 header)")
            header_seen = True
            continue
        if line.get("end") is True:
            if line.get("events") != events or line.get("tracking") != tracked:
                raise ImportRefused(
                    number,
                    f"the end line counts {line.get('events')} events and "
                    f"{line.get('tracking')} tracking records; the file holds {events} and "
                    f"{tracked}",
                )
            end_seen = True
            continue
        if "tracking" in line:
            name, position = line.get("tracking"), line.get("position")
            if not isinstance(name, str) or not _is_int(position):
                raise ImportRefused(number, "a tracking line needs a name and a position")
            tracked += 1
            yield Tracking(name, int(position))  # type: ignore[arg-type]
            continue
        try:
            position = line["position"]
            originator_id = UUID(line["originator_id"])
            version = line["originator_version"]
            topic = line["topic"]
            state = (
                line["state"].encode()
                if "state" in line
                else base64.b64decode(line["state_b64"], validate=True)
            )
            raw_link = line["link"]
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ImportRefused(
                number, f"malformed event ({type(error).__name__}: {error})"
            ) from None
        if not (_is_int(position) and _is_int(version) and isinstance(topic, str)):
            raise ImportRefused(number, "malformed event (position, version or topic)")
        if position <= last_position:
            raise ImportRefused(number, f"position {position} is not after {last_position}")
        last_position = position
        link = None
        if raw_link is None:
            if chained:
                raise ImportRefused(number, f"the event at {position} has no link")
        else:
            try:
                link = Link(
                    position,
                    raw_link["prev_position"],
                    raw_link["committed_at"],
                    bytes.fromhex(raw_link["digest"]),
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ImportRefused(number, f"malformed link ({error})") from None
            if link.prev_position != prev_position:
                raise ImportRefused(
                    number,
                    f"the link at {position} follows {link.prev_position}, not {prev_position} "
                    "(an event was removed or added)",
                )
            expected = mac(
                key,
                prev_digest,
                prev_position,
                link.committed_at,
                Row(position, originator_id.bytes, version, topic, state),
            )
            if not hmac.compare_digest(expected, link.digest):
                raise ImportRefused(
                    number,
                    f"the event at {position} does not match its link (altered, or the audit "
                    "key is not the one the export was written with)",
                )
            chained = True
            prev_position, prev_digest = position, link.digest
        events += 1
        yield Imported(position, StoredEvent(originator_id, version, topic, state), link)
    if not header_seen:
        raise ImportRefused(max(number, 1), "empty file: no export header")
    if not end_seen:
        raise ImportRefused(number, "the export is cut short: no end line")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def import_lines(
    app: Any,
    lines: Iterable[str],
    key_file: KeyFile | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Import an export into `app`'s store, which must be empty, in one transaction: nothing
    is written unless every line checks out."""
    store = chain_store_of(app)
    if store.event_head() or store.chain_head() is not None:
        raise StoreNotEmpty("the store already holds events: import goes into an empty store")
    key = (key_file or key_of(app)).load()
    summary = ExportSummary()
    with _writer(app, store) as write:
        events: list[Imported] = []
        for item in parse(lines, key):
            if isinstance(item, Tracking):
                write.flush(events)
                events = []
                write.track(item)
                summary.tracking += 1
                continue
            events.append(item)
            summary.events += 1
            summary.head = item.position
            if len(events) >= BATCH:
                write.flush(events)
                events = []
                if progress is not None:
                    progress(summary.events)
        write.flush(events)
    return summary


class _Writer:
    def flush(self, events: list[Imported]) -> None:
        raise NotImplementedError

    def track(self, tracking: Tracking) -> None:
        raise NotImplementedError


@contextlib.contextmanager
def _writer(app: Any, store: ChainStore) -> Iterator[_Writer]:
    recorder = app.recorder
    if isinstance(recorder, SQLiteProcessRecorder):
        with recorder.datastore.transaction(commit=True) as cursor:
            yield _SQLiteWriter(recorder, cursor)
        return
    if isinstance(recorder, PostgresProcessRecorder):
        with recorder.datastore.transaction(commit=True) as curs:
            writer = _PostgresWriter(recorder, curs)
            yield writer
            writer.finish()
        return
    raise TypeError(f"cannot import into {store.kind}: use a SQLite or PostgreSQL store")


class _SQLiteWriter(_Writer):
    def __init__(self, recorder: Any, cursor: Any) -> None:
        self.recorder = recorder
        self.cursor = cursor
        table = recorder.events_table_name
        self.insert_event = f"INSERT INTO {table} (rowid, originator_id, originator_version, "
        self.insert_event += "topic, state) VALUES (?,?,?,?,?)"
        self.insert_link = f"INSERT INTO {recorder.chain_table} VALUES (?,?,?,?)"

    def flush(self, events: list[Imported]) -> None:
        if not events:
            return
        self.cursor.executemany(
            self.insert_event,
            [
                (
                    e.position,
                    e.stored.originator_id.hex,  # type: ignore[union-attr]
                    e.stored.originator_version,
                    e.stored.topic,
                    e.stored.state,
                )
                for e in events
            ],
        )
        self.cursor.executemany(self.insert_link, [e.link for e in events if e.link is not None])

    def track(self, tracking: Tracking) -> None:
        self.recorder._insert_tracking(self.cursor, tracking)


class _PostgresWriter(_Writer):
    def __init__(self, recorder: Any, curs: Any) -> None:
        self.recorder = recorder
        self.curs = curs
        self.events_table = recorder._table
        self.chain_table = recorder._chain
        for statement in recorder.lock_table_statements:
            curs.execute(statement)

    def flush(self, events: list[Imported]) -> None:
        if not events:
            return
        self.curs.execute(
            f"INSERT INTO {self.events_table} (notification_id, originator_id, "
            "originator_version, topic, state) SELECT * FROM unnest(%b::bigint[], %b::uuid[], "
            "%b::bigint[], %b::text[], %b::bytea[])",
            (
                [e.position for e in events],
                [e.stored.originator_id for e in events],
                [e.stored.originator_version for e in events],
                [e.stored.topic for e in events],
                [e.stored.state for e in events],
            ),
        )
        links = [e.link for e in events if e.link is not None]
        if links:
            self.curs.execute(
                f"INSERT INTO {self.chain_table} SELECT * FROM unnest(%b::bigint[], "
                "%b::bigint[], %b::bigint[], %b::bytea[])",
                (
                    [link.position for link in links],
                    [link.prev_position for link in links],
                    [link.committed_at for link in links],
                    [link.digest for link in links],
                ),
            )

    def track(self, tracking: Tracking) -> None:
        self.recorder._insert_tracking(self.curs, tracking)

    def finish(self) -> None:
        """The position sequence continues after the imported events."""
        self.curs.execute(
            f"SELECT setval(pg_get_serial_sequence('{self.events_table}', 'notification_id'), "
            f"GREATEST((SELECT MAX(notification_id) FROM {self.events_table}), 1))"
        )
