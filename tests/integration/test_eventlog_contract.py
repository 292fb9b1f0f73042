"""Every event log (`projections.ports.EventLog`: memory, SQLite, PostgreSQL) against the same
expectations, with the library's own `select_notifications` as the reference: what the read
side folds must be exactly what the store holds.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import PostgresEventLog, event_log
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.projections.ports import EventLog, LoggedRow
from eventsourcing.persistence import StoredEvent

from tests.conftest import POSTGRES_URL, make_settings

USERS = range(1, 7)
UNKNOWN_TOPIC = "dianabot.domain.player:Player.NoSuchEvent"


@pytest.fixture
def wired(database_url: str) -> Iterator[Services]:
    """An application with a small history: registrations, reactions, a check-in each, and
    one row of an event class that does not exist (the log must still list it)."""
    with bootstrap(make_settings(database_url), clock=ManualClock(), projections=False) as s:
        app = s.app
        for user in USERS:
            assert app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
        for user in USERS:
            assert app.react(user, "chan:1", "❤️", Origin.telegram(100 + user, user)).ok
            assert app.check_in(user, Origin.telegram(200 + user, user)).ok
        app.recorder.insert_events([StoredEvent(uuid.uuid4(), 1, UNKNOWN_TOPIC, b"{}")])
        yield s


@pytest.fixture
def log(wired: Services) -> EventLog:
    return event_log(wired.app)


def _rows(rows: Any) -> list[tuple[int, Any, int, str, bytes]]:
    return [(r.id, r.originator_id, r.originator_version, r.topic, bytes(r.state)) for r in rows]


def _library(wired: Services, start: int, upto: int) -> list[Any]:
    return list(wired.app.recorder.select_notifications(start, 10_000, stop=upto))


def test_head_is_the_last_position(wired: Services, log: EventLog) -> None:
    head = log.head()
    assert head == wired.app.recorder.max_notification_id()
    assert _library(wired, 1, head)[-1].id == head


@pytest.mark.parametrize("page_size", [1, 2, 5, 1000])
def test_pages_from_any_position_hold_what_the_library_reads(
    wired: Services, log: EventLog, page_size: int
) -> None:
    head = log.head()
    for after in (0, 1, 7, head - 1, head):
        pages = list(log.pages(after, head, page_size))
        assert all(0 < len(page) <= page_size for page in pages)
        read = [row for page in pages for row in page]
        assert _rows(read) == _rows(_library(wired, after + 1, head))


def test_pages_stop_at_upto(wired: Services, log: EventLog) -> None:
    for after, upto in ((0, 1), (0, 5), (3, 9), (4, 4), (9, 3)):
        read = [row for page in log.pages(after, upto, 2) for row in page]
        assert [row.id for row in read] == list(range(after + 1, upto + 1))
        if upto > after:
            assert _rows(read) == _rows(_library(wired, after + 1, upto))


def test_rows_decode_to_the_librarys_events(wired: Services, log: EventLog) -> None:
    head = log.head()
    read = [row for page in log.pages(0, head, 4) for row in page if row.topic != UNKNOWN_TOPIC]
    library = [n for n in _library(wired, 1, head) if n.topic != UNKNOWN_TOPIC]
    mapper = wired.app.mapper
    assert [log.decode(row) for row in read] == [mapper.to_domain_event(n) for n in library]
    assert {log.name_of(row.topic) for row in read} >= {
        "PlayerRegistered",
        "ReactionRecorded",
        "CheckedIn",
    }
    assert log.name_of(UNKNOWN_TOPIC) == "NoSuchEvent"  # no import error: decoding would fail


def test_streams_hold_those_streams_in_log_order(wired: Services, log: EventLog) -> None:
    head = log.head()
    players = [wired.app.get_player(user) for user in (2, 5)]
    ids = {p.id for p in players if p is not None}
    expected = [n for n in _library(wired, 1, head) if n.originator_id in ids]
    assert len(expected) >= 2 * 3  # registered, reacted, checked in (and what that earned)
    assert _rows(log.streams(ids, head)) == _rows(expected)
    upto = expected[3].id
    assert _rows(log.streams(ids, upto)) == _rows(expected[:4])
    assert _rows(log.streams(ids, upto - 1)) == _rows(expected[:3])
    assert log.streams([uuid.uuid4()], head) == []


def test_one_stream_in_version_order_and_its_head(wired: Services, log: EventLog) -> None:
    player = wired.app.get_player(3)
    assert player is not None
    stream = log.stream(player.id)
    assert [e.originator_version for e in stream] == list(range(1, player.version + 1))
    assert [type(log.decode(e)).__name__ for e in stream][0] == "PlayerRegistered"
    assert log.stream_head(player.id) == player.version
    assert log.stream_head(uuid.uuid4()) == 0
    assert list(log.stream(uuid.uuid4())) == []


def _waits(log: EventLog) -> Any:
    """A waker whose `wait` runs in a thread; returns (waker, finished event, elapsed box)."""
    waker = log.waker()
    done = threading.Event()
    took: list[float] = []

    def wait(timeout: float) -> None:
        started = time.monotonic()
        waker.wait(timeout)
        took.append(time.monotonic() - started)
        done.set()

    return waker, done, took, wait


def _listening(waker: Any) -> None:
    """A pushing waker may need a moment to start listening; a polling one has nothing to do."""
    deadline = time.monotonic() + 10
    while hasattr(waker, "healthy") and not waker.healthy:
        assert time.monotonic() < deadline, "the waker never started listening"
        time.sleep(0.02)
    waker.wait(0.05)  # drop the wake-up of "listening now"


def test_a_waker_wakes_on_a_new_event(wired: Services, log: EventLog) -> None:
    waker, done, took, wait = _waits(log)
    try:
        _listening(waker)
        timeout = waker.patience(0.2)  # a pushing store's is its long safety poll
        thread = threading.Thread(target=wait, args=(timeout,), daemon=True)
        thread.start()
        time.sleep(0.1)
        assert wired.app.react(1, "chan:2", "✨", Origin.telegram(900, 1)).ok
        assert done.wait(timeout + 5)
        # Pushed (memory, PostgreSQL): at once, long before the safety poll. Polled (SQLite):
        # by the poll interval.
        assert took[0] < min(timeout, 1.0) + 0.5
    finally:
        waker.close()


def test_a_waker_returns_on_timeout_when_nothing_happens(log: EventLog) -> None:
    waker, done, took, wait = _waits(log)
    try:
        _listening(waker)
        started = time.monotonic()
        waker.wait(0.3)
        assert 0.25 <= time.monotonic() - started < 3
    finally:
        waker.close()


def test_a_waker_sleeps_through_another_schemas_inserts(wired: Services, log: EventLog) -> None:
    """PostgreSQL's NOTIFY channels are database-wide: named after the table alone, every
    application of a database would wake on every other one's insert (a live loop then steps
    for nothing: a third of a core, measured, beside a busy neighbour)."""
    if not isinstance(log, PostgresEventLog):
        pytest.skip("only PostgreSQL pushes through a channel shared by schemas")
    other = wired.database.url.replace(wired.database.schema, f"o_{uuid.uuid4().hex[:12]}")
    waker = log.waker()
    try:
        _listening(waker)
        waker.wait(0.05)
        with bootstrap(make_settings(other), clock=ManualClock(), projections=False) as neighbour:
            assert neighbour.app.recorder.channel_name != wired.app.recorder.channel_name
            started = time.monotonic()
            for user in USERS:
                assert neighbour.app.register_player(user, "n", Origin.telegram(user, user)).ok
            waker.wait(1.0)
            assert time.monotonic() - started >= 0.9, "woken by another schema's inserts"
            assert wired.app.react(1, "chan:3", "✨", Origin.telegram(901, 1)).ok
            started = time.monotonic()
            waker.wait(5.0)
            assert time.monotonic() - started < 2.0, "not woken by its own schema's insert"
    finally:
        waker.close()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            schema = other.rsplit("schema=", 1)[1]
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_waker_is_woken_and_closed_from_another_thread(log: EventLog) -> None:
    waker, done, took, wait = _waits(log)
    thread = threading.Thread(target=wait, args=(30.0,), daemon=True)
    thread.start()
    time.sleep(0.05)
    waker.wake()
    assert done.wait(5)
    done.clear()
    thread = threading.Thread(target=wait, args=(30.0,), daemon=True)
    thread.start()
    time.sleep(0.05)
    waker.close()
    assert done.wait(10)


def test_a_store_that_pushes_is_patient(wired: Services, log: EventLog) -> None:
    """Memory and PostgreSQL push: a live loop may wait long (a safety poll); SQLite polls."""
    waker = log.waker()
    try:
        _listening(waker)
        pushes = wired.database.kind in {"memory", "postgres"}
        assert (waker.patience(0.25) > 0.25) is pushes
    finally:
        waker.close()


def test_rows_have_the_port_shape(log: EventLog) -> None:
    row: LoggedRow = next(iter(log.pages(0, 1, 1)))[0]
    assert (row.id, row.originator_version) == (1, 1)
    assert isinstance(row.state, bytes | memoryview)
