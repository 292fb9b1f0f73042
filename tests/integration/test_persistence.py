"""Database URLs, unreachable servers, a database gone away: clear errors, no partial writes."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.persistence import DatabaseUnavailable, database_from_url, prepare
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from psycopg import sql

from tests.conftest import POSTGRES_URL, make_settings


def test_urls_map_onto_the_eventsourcing_modules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sqlite = database_from_url(f"sqlite:///{tmp_path}/x.sqlite3")
    assert sqlite.kind == "sqlite"
    assert (
        sqlite.eventsourcing_env["PERSISTENCE_MODULE"]
        == "dianabot.adapters.sqlite_recorder:DianaSQLiteFactory"
    )
    assert sqlite.eventsourcing_env["SQLITE_DBNAME"] == f"{tmp_path}/x.sqlite3"
    pg = database_from_url("postgresql+psycopg://bob:secret@db.local:6543/diana?schema=s1")
    assert pg.kind == "postgres" and pg.schema == "s1"
    env = pg.eventsourcing_env
    assert env["PERSISTENCE_MODULE"] == "dianabot.adapters.postgres_recorder:DianaPostgresFactory"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.local",
        "6543",
        "diana",
    )
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_SCHEMA"]) == (
        "bob",
        "secret",
        "s1",
    )
    assert "POSTGRES_ENABLE_DB_FUNCTIONS" not in env
    assert "secret" not in pg.describe()
    assert database_from_url("memory://").eventsourcing_env == {
        "PERSISTENCE_MODULE": "eventsourcing.popo"
    }


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/x", "sqlite:///:memory:", "not a url at all", "sqlite://"]
)
def test_unsupported_urls_are_clear_errors(url: str) -> None:
    with pytest.raises(DatabaseUnavailable):
        database_from_url(url)


def test_missing_sqlite_directory_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatabaseUnavailable, match="does not exist"):
        prepare(database_from_url(f"sqlite:///{tmp_path}/nope/x.sqlite3"))


def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    database = database_from_url("postgresql+psycopg://postgres:hunter2@127.0.0.1:1/test")
    with pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL") as failure:
        prepare(database)
    assert "hunter2" not in str(failure.value)


def test_a_database_that_goes_away_gives_a_typed_failure_and_writes_nothing(
    postgres_url: str,
) -> None:
    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        app = wired.app
        assert app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
        schema = wired.database.schema
        assert schema
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(schema), sql.Identifier(f"{schema}_away")
                )
            )
        try:
            result = app.react(7, "chan:1", "❤️", Origin.telegram(2, 7))
            assert result.outcome == "unavailable"
            assert "unavailable" in result.message
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
                connection.execute(
                    sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                        sql.Identifier(f"{schema}_away"), sql.Identifier(schema)
                    )
                )
        # Back again: nothing was half-written, and the same update now applies once.
        assert app.recorder.max_notification_id() == 1
        assert app.react(7, "chan:1", "❤️", Origin.telegram(2, 7)).ok
        assert app.get_player(7).balance == 10


def test_a_dropped_connection_is_retried_once_and_applies_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server closed our pooled connections (restart, idle timeout): the next command
    retries on a fresh connection instead of failing the user."""
    app_name = f"dianabot-drop-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", app_name)
    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        app = wired.app
        assert app.register_player(7, "Ana", Origin.telegram(1, 7)).ok
        with psycopg.connect(
            POSTGRES_URL, autocommit=True, application_name="dianabot-test-killer"
        ) as connection:
            killed = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (app_name,),
            ).fetchone()
        assert killed and killed[0] >= 1
        result = app.react(7, "chan:1", "❤️", Origin.telegram(2, 7))
        assert result.ok, result.message
        assert app.react(7, "chan:1", "❤️", Origin.telegram(2, 7)).outcome == "duplicate"
        assert app.recorder.max_notification_id() == 3
        assert app.get_player(7).balance == 10


def test_the_postgres_recorder_returns_positions_in_insertion_order(postgres_url: str) -> None:
    """One transaction of many aggregates' events: each event gets the position it is read at."""
    from dianabot.adapters.postgres_recorder import (
        ArrayInsertAggregateRecorder,
        ArrayInsertPostgresRecorder,
    )
    from dianabot.application.group_commit import collect

    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        app = wired.app
        assert isinstance(app.recorder, ArrayInsertPostgresRecorder)
        assert isinstance(app.snapshots.recorder, ArrayInsertAggregateRecorder)
        for user in range(1, 21):
            app.register_player(user, f"u{user}", Origin.telegram(user, user))
        players = []
        for user in range(1, 21):
            player = app.get_player(user)
            player.react(
                f"chan:{user}", "❤️", Origin.telegram(100 + user, user).cause(app.clock.now())
            )
            players.append(player)
        recordings = app.record(collect(players))
        stored = app.recorder.select_notifications(21, 100)
        assert [r.notification.id for r in recordings] == [n.id for n in stored]
        assert [
            (r.domain_event.originator_id, r.domain_event.originator_version) for r in recordings
        ] == [(n.originator_id, n.originator_version) for n in stored]


def test_the_postgres_recorder_writes_plain_and_unusual_rows_alike(postgres_url: str) -> None:
    """Plain rows go in one round trip as literal arrays; a row whose topic could not be written
    into a literal safely (quote, brace, space) takes the parameterised path. Both store the
    exact bytes, in order, with gap-free positions."""
    from dianabot.adapters.postgres_recorder import literal_rows
    from eventsourcing.persistence import StoredEvent

    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        recorder = wired.app.recorder
        tricky_state = '{"name":"O\'Brien \\\\ {x,y} \\"q\\" ❤️ \\u0000"}'.encode()
        plain = [
            StoredEvent(uuid.uuid4(), 1, "domain.player:Player.PointsAwarded", tricky_state),
            StoredEvent(uuid.uuid4(), 1, "domain.player:Player.PointsAwarded", b"{}"),
        ]
        unusual = [StoredEvent(uuid.uuid4(), 1, "odd topic',{}", tricky_state)]
        assert literal_rows(plain, "uuid") is not None
        assert literal_rows(unusual, "uuid") is None
        assert literal_rows(plain, "text") is None
        positions = [*recorder.insert_events(plain), *recorder.insert_events(unusual)]
        assert positions == [1, 2, 3]
        stored = recorder.select_notifications(1, 10)
        assert [(n.id, n.originator_id, n.topic, n.state) for n in stored] == [
            (position, event.originator_id, event.topic, event.state)
            for position, event in zip(positions, [*plain, *unusual], strict=True)
        ]


def test_a_conflicting_literal_batch_writes_nothing_and_leaves_the_connection_usable(
    postgres_url: str,
) -> None:
    from eventsourcing.persistence import IntegrityError, StoredEvent

    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        recorder = wired.app.recorder
        taken = StoredEvent(uuid.uuid4(), 1, "domain.player:Player.PointsAwarded", b"{}")
        assert recorder.insert_events([taken]) == [1]
        fresh = StoredEvent(uuid.uuid4(), 1, "domain.player:Player.PointsAwarded", b"{}")
        with pytest.raises(IntegrityError):
            recorder.insert_events([fresh, taken])
        (position,) = recorder.insert_events([fresh])  # (a rolled-back insert uses up ids)
        assert position > 1
        assert [n.originator_id for n in recorder.select_notifications(1, 10)] == [
            taken.originator_id,
            fresh.originator_id,
        ]


def _assert_selects_like(recorder: Any, library: Any) -> None:
    """Every range, order and limit gives the library's own rows, bytes included, for a UUID
    or its string form, and none for an unknown id."""
    from eventsourcing.persistence import StoredEvent

    aggregate = uuid.uuid4()
    states = [b"{}", b'{"a":"\\u0000 \xe2\x9d\xa4"}', bytes(range(256)), b"x" * 50_000]
    recorder.insert_events(
        [
            StoredEvent(aggregate, version, "domain.player:Player.PointsAwarded", state)
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


def test_the_postgres_recorder_selects_what_the_library_selects(postgres_url: str) -> None:
    """Aggregates load through a binary-format `select_events`."""
    from eventsourcing.postgres import PostgresAggregateRecorder

    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        recorder = wired.app.recorder
        library = PostgresAggregateRecorder(
            recorder.datastore, events_table_name=recorder.events_table_name
        )
        _assert_selects_like(recorder, library)


def test_the_sqlite_recorder_selects_what_the_library_selects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Aggregates load through a `select_events` that reads plain tuples."""
    from dianabot.adapters.sqlite_recorder import LeanSelectApplicationRecorder
    from eventsourcing.sqlite import SQLiteAggregateRecorder

    url = f"sqlite:///{tmp_path}/events.sqlite3"
    with bootstrap(make_settings(url), clock=ManualClock()) as wired:
        recorder = wired.app.recorder
        assert isinstance(recorder, LeanSelectApplicationRecorder)
        library = SQLiteAggregateRecorder(
            recorder.datastore, events_table_name=recorder.events_table_name
        )
        _assert_selects_like(recorder, library)


def test_a_transaction_sent_now_and_awaited_later_lands_or_fails_whole(postgres_url: str) -> None:
    """The group-commit writer sends a batch and waits for it after deciding the next one: the
    positions come back in order, a conflict is an IntegrityError that writes nothing, and the
    pooled connection is usable again either way."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    with bootstrap(make_settings(postgres_url), clock=ManualClock()) as wired:
        recorder = wired.app.recorder
        topic = "domain.player:Player.PointsAwarded"
        first = [StoredEvent(uuid.uuid4(), 1, topic, b"{}") for _ in range(3)]
        outcome = recorder.begin_insert_events(first)
        assert list(outcome()) == [1, 2, 3]
        clashing = [StoredEvent(uuid.uuid4(), 1, topic, b"{}"), first[1]]
        outcome = recorder.begin_insert_events(clashing)
        with pytest.raises(IntegrityError):
            outcome()
        unusual = [StoredEvent(uuid.uuid4(), 1, "odd topic'", b"{}")]  # not literal-safe
        (position,) = recorder.begin_insert_events(unusual)()
        assert position > 3
        stored = recorder.select_notifications(1, 10)
        assert [n.originator_id for n in stored] == [
            *(event.originator_id for event in first),
            unusual[0].originator_id,
        ]
        stats = recorder.datastore.pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"]  # every connection came back
        with recorder.datastore.get_connection() as conn:
            assert conn.execute("SELECT 1").fetchone() is not None
