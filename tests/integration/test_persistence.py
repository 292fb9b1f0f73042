"""Database URLs, unreachable servers, a database gone away: clear errors, no partial writes."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.eventstore.database import DatabaseUnavailable, database_from_url, prepare
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from psycopg import sql

from tests.conftest import POSTGRES_URL, make_settings


def test_urls_map_onto_the_eventsourcing_modules(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sqlite = database_from_url(f"sqlite:///{tmp_path}/x.sqlite3")
    assert sqlite.kind == "sqlite"
    assert (
        sqlite.eventsourcing_env["PERSISTENCE_MODULE"]
        == "dianabot.adapters.eventstore.sqlite:DianaSQLiteFactory"
    )
    assert sqlite.eventsourcing_env["SQLITE_DBNAME"] == f"{tmp_path}/x.sqlite3"
    pg = database_from_url("postgresql+psycopg://bob:secret@db.local:6543/diana?schema=s1")
    assert pg.kind == "postgres" and pg.schema == "s1"
    env = pg.eventsourcing_env
    assert env["PERSISTENCE_MODULE"] == "dianabot.adapters.eventstore.postgres:DianaPostgresFactory"
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
        "PERSISTENCE_MODULE": "dianabot.adapters.eventstore.memory:DianaPOPOFactory"
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
