"""Every event store (memory, SQLite, PostgreSQL) against the same expectations.

The application writes through the event writer port (`application.ports.EventWriter`) that the
store's factory builds: several aggregates' events and an optional tracking record in one
transaction. The recorders the package subclasses must read exactly what the library's own
recorders read.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.postgres import literal_rows
from dianabot.application.clock import ManualClock
from dianabot.application.group_commit import collect
from dianabot.application.ports import EventWriter, StoreFactory, Write
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.player import Player
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking

from tests.conftest import make_settings

TOPIC = "domain.player:Player.PointsAwarded"


class Store:
    """An application on one store, and a writer built by its factory that logs every
    transaction it is told committed."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.app = services.app
        self.committed: list[Write] = []
        factory = self.app.factory
        assert isinstance(factory, StoreFactory)
        self.writer: EventWriter = factory.event_writer(
            self.app.recorder, self.app.mapper, self.after_commit
        )

    def after_commit(self, write: Write) -> None:
        """Log the write, and drop the application's cached copies of what it saved (they
        are now stale: the application did not write them)."""
        self.committed.append(write)
        cache = self.app.repository.cache
        for aggregate_id in write.aggregates:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def reacting(self, users: range, post: str) -> Write:
        """One write of a reaction by each of these (registered) users."""
        players = []
        for user in users:
            player = self.app.get_player(user)
            assert player is not None
            player.react(post, "❤️", self.cause(user))
            players.append(player)
        return collect(players)

    def cause(self, user: int) -> Any:
        return Origin.telegram(uuid.uuid4().int % 10**9, user).cause(self.app.clock.now())


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with bootstrap(make_settings(database_url), clock=ManualClock()) as services:
        for user in range(1, 9):
            assert services.app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
        yield Store(services)


def assert_landed(store: Store, write: Write, recordings: list[Any], after: int) -> None:
    """The write's rows are stored right after position `after`, gap-free, in its order, and
    the recordings say so."""
    stored = store.app.recorder.select_notifications(after + 1, 1000)
    positions = list(range(after + 1, after + 1 + len(write.events)))
    assert [n.id for n in stored] == positions
    assert [r.notification.id for r in recordings] == positions
    assert [r.domain_event for r in recordings] == write.events
    assert write.stored_events is not None
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in stored] == [
        (row.originator_id, row.originator_version, row.topic, row.state)
        for row in write.stored_events
    ]
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in stored] == [
        (
            r.notification.originator_id,
            r.notification.originator_version,
            r.notification.topic,
            r.notification.state,
        )
        for r in recordings
    ]


@pytest.mark.parametrize("encoded", [True, False], ids=["encoded", "not-encoded"])
def test_a_batch_lands_whole_with_gap_free_increasing_positions(
    store: Store, encoded: bool
) -> None:
    """Several aggregates' events in one transaction, encoded beforehand (as the group-commit
    writer does) or not (then the writer encodes them)."""
    head = store.head()
    write = store.reacting(range(1, 9), "chan:1")
    if encoded:
        store.writer.encode(write)
    recordings = store.writer.record(write)
    assert_landed(store, write, recordings, head)
    assert store.committed == [write]
    next_write = store.reacting(range(1, 3), "chan:2")
    assert_landed(store, next_write, store.writer.record(next_write), head + len(write.events))


def test_a_version_conflict_raises_and_writes_nothing_of_the_batch(store: Store) -> None:
    stale = store.app.get_player(2)  # a copy that another command overtakes
    assert store.app.react(2, "chan:9", "❤️", Origin.telegram(900, 2)).ok
    head = store.head()
    assert stale is not None
    stale.react("chan:1", "❤️", store.cause(2))
    fresh = store.app.get_player(1)
    assert fresh is not None
    fresh.react("chan:1", "❤️", store.cause(1))
    write = collect([fresh, stale])
    store.writer.encode(write)
    with pytest.raises(IntegrityError):
        store.writer.record(write)
    assert store.head() == head
    assert store.committed == []
    assert store.app.recorder.select_notifications(head + 1, 10) == []
    # The store is usable again at once: the same user's change, redone, lands.
    again = store.reacting(range(1, 2), "chan:1")
    recordings = store.writer.record(again)
    assert {r.domain_event.originator_id for r in recordings} == {fresh.id}
    assert store.app.get_player(1).balance == fresh.balance


def test_a_tracking_record_is_written_with_the_events_or_not_at_all(store: Store) -> None:
    recorder = store.app.recorder
    head = store.head()
    write = store.reacting(range(1, 4), "chan:1")
    write.tracking = Tracking("upstream", 5)
    assert_landed(store, write, store.writer.record(write), head)
    assert recorder.max_tracking_id("upstream") == 5
    # A tracking record not after the last one (the same upstream event processed twice)
    # fails the whole transaction.
    repeated = store.reacting(range(4, 6), "chan:1")
    repeated.tracking = Tracking("upstream", 5)
    with pytest.raises(IntegrityError):
        store.writer.record(repeated)
    head += len(write.events)
    assert store.head() == head
    assert recorder.max_tracking_id("upstream") == 5
    later = store.reacting(range(4, 6), "chan:1")
    later.tracking = Tracking("upstream", 6)
    assert_landed(store, later, store.writer.record(later), head)
    assert recorder.max_tracking_id("upstream") == 6


def test_the_application_records_through_the_port(store: Store) -> None:
    """`record` is the writer's, followed by the application's after-commit work: the saved
    aggregates are cached."""
    app = store.app
    head = store.head()
    write = store.reacting(range(1, 3), "chan:1")
    assert_landed(store, write, app.record(write), head)
    cache = app.repository.cache
    assert cache is not None
    for aggregate_id, saved in write.aggregates.items():
        assert cache.get(aggregate_id).version == saved.version


def test_rows_of_any_bytes_and_topic_are_stored_exactly(store: Store) -> None:
    """What a recorder is given is what it reads back, in order, with gap-free positions:
    plain rows and rows that could not be written into a SQL literal (quotes, braces, spaces;
    on PostgreSQL they take the parameterised path)."""
    recorder = store.app.recorder
    head = store.head()
    tricky_state = '{"name":"O\'Brien \\\\ {x,y} \\"q\\" ❤️ \\u0000"}'.encode()
    plain = [
        StoredEvent(uuid.uuid4(), 1, TOPIC, tricky_state),
        StoredEvent(uuid.uuid4(), 1, TOPIC, b"{}"),
    ]
    unusual = [StoredEvent(uuid.uuid4(), 1, "odd topic',{}", tricky_state)]
    positions = [*recorder.insert_events(plain), *recorder.insert_events(unusual)]
    assert positions == [head + 1, head + 2, head + 3]
    stored = recorder.select_notifications(head + 1, 10)
    assert [(n.id, n.originator_id, n.topic, n.state) for n in stored] == [
        (position, event.originator_id, event.topic, event.state)
        for position, event in zip(positions, [*plain, *unusual], strict=True)
    ]


def test_a_conflicting_batch_writes_nothing_and_leaves_the_store_usable(store: Store) -> None:
    recorder = store.app.recorder
    head = store.head()
    taken = StoredEvent(uuid.uuid4(), 1, TOPIC, b"{}")
    assert recorder.insert_events([taken]) == [head + 1]
    fresh = StoredEvent(uuid.uuid4(), 1, TOPIC, b"{}")
    with pytest.raises(IntegrityError):
        recorder.insert_events([fresh, taken])
    (position,) = recorder.insert_events([fresh])  # (a rolled-back insert may use up ids)
    assert position > head + 1
    assert [n.originator_id for n in recorder.select_notifications(head + 1, 10)] == [
        taken.originator_id,
        fresh.originator_id,
    ]


def test_only_plain_rows_are_written_as_literals() -> None:
    """The PostgreSQL one-round-trip insert writes rows into array literals only when every
    value is of a kind that cannot close a quote or an array element."""
    plain = [StoredEvent(uuid.uuid4(), 1, TOPIC, b"{}")]
    assert literal_rows(plain, "uuid") is not None
    assert literal_rows(plain, "text") is None
    assert literal_rows([StoredEvent(uuid.uuid4(), 1, "odd topic',{}", b"{}")], "uuid") is None
    assert literal_rows([StoredEvent(str(uuid.uuid4()), 1, TOPIC, b"{}")], "uuid") is None


# ----- the package's selects against the library's ------------------------------------------


def _library_recorder(kind: str, recorder: Any) -> Any:
    if kind == "postgres":
        from eventsourcing.postgres import PostgresAggregateRecorder

        return PostgresAggregateRecorder(
            recorder.datastore, events_table_name=recorder.events_table_name
        )
    from eventsourcing.sqlite import SQLiteAggregateRecorder

    return SQLiteAggregateRecorder(recorder.datastore, events_table_name=recorder.events_table_name)


def _assert_selects_like(recorder: Any, library: Any) -> None:
    """Every range, order and limit gives the library's own rows, bytes included, for a UUID
    or its string forms, and none for an unknown id."""
    aggregate = uuid.uuid4()
    states = [b"{}", b'{"a":"\\u0000 \xe2\x9d\xa4"}', bytes(range(256)), b"x" * 50_000]
    recorder.insert_events(
        [
            StoredEvent(aggregate, version, TOPIC, state)
            for version, state in enumerate(states, start=1)
        ]
    )
    for originator_id in (aggregate, str(aggregate), aggregate.hex, uuid.uuid4()):
        for gt in (None, 0, 2):
            for lte in (None, 3, 4):
                for desc in (False, True):
                    for limit in (None, 1, 10):
                        options = {"gt": gt, "lte": lte, "desc": desc, "limit": limit}
                        ours = recorder.select_events(originator_id, **options)
                        theirs = library.select_events(originator_id, **options)
                        assert ours == theirs, options
                        assert all(type(e.originator_id) is uuid.UUID for e in ours)
    assert [e.state for e in recorder.select_events(aggregate)] == states


def test_the_package_selects_what_the_library_selects(shared_services: Services) -> None:
    """Aggregates and snapshots load through the package's leaner `select_events` (binary
    results on PostgreSQL, plain tuples on SQLite): the same rows as the library's."""
    app = shared_services.app
    assert app.snapshots is not None
    for recorder in (app.recorder, app.snapshots.recorder):
        library = _library_recorder(shared_services.database.kind, recorder)
        assert type(recorder).select_events is not type(library).select_events
        _assert_selects_like(recorder, library)


# ----- the application and its store ---------------------------------------------------------


def test_an_application_needs_a_factory_of_the_event_store_package() -> None:
    with pytest.raises(TypeError, match="dianabot.adapters.eventstore"):
        DianaApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})


def test_a_player_event_round_trips_through_every_store(store: Store) -> None:
    """What the writer encodes, the application's mapper decodes to an equal event."""
    head = store.head()
    write = store.reacting(range(1, 2), "chan:1")
    store.writer.record(write)
    stored = store.app.recorder.select_notifications(head + 1, 10)
    events = [store.app.mapper.to_domain_event(notification) for notification in stored]
    assert isinstance(events[0], Player.ReactionRecorded)
    assert events == write.events
