"""A corrupt stored stream answers `corrupt_history` and hides nothing else (issue 11, item 2,
the command side).

An event that no longer decodes, or a gap in a stream's versions, made every command on that
stream raise (`MapperDeserialisationError`, `OriginatorVersionError`: a traceback in the CLI).
Now the command is answered `corrupt_history`, with the stream and the version it cannot be
replayed from, logged in one line; every other user's commands run as usual. The rows are
corrupted directly in each store (SQL for SQLite and PostgreSQL, the recorder's lists in
memory).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from uuid import UUID

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, RegisterPlayer
from dianabot.application.results import CORRUPT_HISTORY, CommandResult, Origin
from dianabot.domain.ids import player_id
from psycopg import sql

from tests.conftest import ADMIN_ID, make_settings

BROKEN, HEALTHY = 7, 8
UNDECODABLE = b"\x00\xff not JSON"


@pytest.fixture(params=[False, True], ids=["direct", "group-commit"])
def services(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> Iterator[Services]:
    settings = make_settings(database_url, group_commit=request.param)
    with bootstrap(settings, clock=clock, projections=False) as wired:
        yield wired


def grant(services: Services, user: int) -> CommandResult:
    command = GrantPoints(user, admin_id=ADMIN_ID, amount=5, reason="test")
    return services.app.bus.handle(command, Origin.admin(ADMIN_ID))


def played(services: Services) -> None:
    """Two users with a few events each (versions 1 to 4: fewer than a snapshot's interval)."""
    for user in (BROKEN, HEALTHY):
        result = services.app.bus.handle(
            RegisterPlayer(user, f"user {user}"), Origin.telegram(user, user)
        )
        assert result.ok, result
        for _ in range(3):
            assert grant(services, user).ok


def corrupt(services: Services, version: int, *, delete: bool) -> None:
    """Make `BROKEN`'s event at `version` undecodable (or delete it: a gap), in the store
    itself, and drop the cached copy so the next command loads from the store."""
    stream = player_id(BROKEN)
    database = services.database
    if database.kind == "memory":
        recorder = services.app.recorder
        index = recorder._stored_events_index[str(stream)]  # type: ignore[attr-defined]
        if delete:
            del index[version]
        else:
            events = recorder._stored_events  # type: ignore[attr-defined]
            events[index[version]] = replace(events[index[version]], state=UNDECODABLE)
    elif database.kind == "sqlite":
        with sqlite3.connect(services.database.eventsourcing_env["SQLITE_DBNAME"]) as connection:
            table = services.app.recorder.events_table_name  # type: ignore[attr-defined]
            statement, params = _statement(delete, "?", table)
            connection.execute(statement, (*params, stream.hex, version))
    else:
        env = database.eventsourcing_env
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            autocommit=True,
        ) as connection:
            name = services.app.recorder.events_table_name  # type: ignore[attr-defined]
            table = sql.Identifier(database.schema or "public", name).as_string(None)
            statement, params = _statement(delete, "%s", table)
            connection.execute(statement, (*params, stream, version))  # type: ignore[arg-type]
    services.app._forget([services.app.get_player(HEALTHY)])  # the healthy one loads too
    cache = services.app.repository.cache
    if cache is not None:
        with contextlib.suppress(KeyError):
            cache.get(stream, evict=True)


def _statement(
    delete: bool, mark: str, table: str = "stored_events"
) -> tuple[str, tuple[object, ...]]:
    where = f"WHERE originator_id = {mark} AND originator_version = {mark}"
    if delete:
        return f"DELETE FROM {table} {where}", ()
    return f"UPDATE {table} SET state = {mark} {where}", (UNDECODABLE,)


@pytest.mark.parametrize("delete", [False, True], ids=["undecodable", "version-gap"])
def test_a_corrupt_stream_answers_corrupt_history_and_others_go_on(
    services: Services, delete: bool, caplog: pytest.LogCaptureFixture
) -> None:
    played(services)
    corrupt(services, 2, delete=delete)

    with caplog.at_level(logging.INFO):
        result = grant(services, BROKEN)

    assert result.outcome == CORRUPT_HISTORY, result
    assert result.details == {"stream": str(player_id(BROKEN)), "version": 2 if not delete else 3}
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert logged and str(player_id(BROKEN)) in logged[0].getMessage()
    assert "version" in logged[0].getMessage()
    assert not [record for record in caplog.records if record.exc_info]
    # The same again (nothing cached half-loaded), and another user is unaffected.
    assert grant(services, BROKEN).outcome == CORRUPT_HISTORY
    healthy = grant(services, HEALTHY)
    assert healthy.ok, healthy
    player = services.app.get_player(HEALTHY)
    assert player is not None and isinstance(player.id, UUID)
