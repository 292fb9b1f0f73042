"""Item 7 of the hardening issue: commands that only read never create a store, say plainly when
it is missing or empty, and after `dianabot demo` see the demo's data."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.demo import DEMO_SPAN, demo_settings, play
from dianabot.adapters.cli.main import app as cli
from dianabot.application.clock import ManualClock
from typer.testing import CliRunner, Result

from tests.conftest import POSTGRES_URL, by_system, make_settings

runner = CliRunner()

READ_COMMANDS = [
    ["reconcile"],
    ["reconcile", "--json"],
    ["reconcile", "--fix", "--yes"],
    ["projections", "status"],
    ["projections", "rebuild", "all", "--yes"],
]


@pytest.fixture
def workdir(bare_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")
    return bare_workdir


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_read_command_without_a_database_creates_none(workdir: Path, args: list[str]) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 4, result.output
    assert "no database at" in result.output and "dianabot.sqlite3" in result.output
    assert "consistent" not in result.output
    assert list(workdir.iterdir()) == []


def test_an_empty_store_is_said_plainly(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'empty.sqlite3'}"
    bootstrap(make_settings(url)).close()  # tables, no events
    for args in READ_COMMANDS:
        result = runner.invoke(cli, ["--database-url", url, *args])
        assert result.exit_code == 4, (args, result.output)
        assert "is empty" in result.output


def test_json_errors_for_a_missing_store(workdir: Path) -> None:
    result = runner.invoke(cli, ["reconcile", "--json"])
    assert result.exit_code == 4
    error = json.loads(result.stdout)
    assert error["exit_code"] == 4 and "no database" in error["message"]


def test_a_read_command_on_postgres_creates_no_schema(workdir: Path, postgres_url: str) -> None:
    schema = postgres_url.rsplit("schema=", 1)[1]
    for args in READ_COMMANDS:
        result = runner.invoke(cli, ["--database-url", postgres_url, *args])
        assert result.exit_code == 4, (args, result.output)
        assert "is empty" in result.output
    with psycopg.connect(POSTGRES_URL) as connection:
        found = connection.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [schema]
        ).fetchone()
    assert found == (0,)


def test_reconcile_of_an_unknown_user_is_an_error(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'bot.sqlite3'}"
    clock = ManualClock(datetime.now(UTC) - DEMO_SPAN)
    with bootstrap(demo_settings(make_settings(url)), clock=clock) as wired:
        play(wired, clock)
    unknown = runner.invoke(cli, ["--database-url", url, "reconcile", "--user", "999"])
    assert unknown.exit_code == 2
    assert "unknown user" in unknown.output and "999" in unknown.output
    as_json = runner.invoke(cli, ["--database-url", url, "reconcile", "--user", "999", "--json"])
    assert json.loads(as_json.stdout)["error"] == "unknown user"
    known = runner.invoke(cli, ["--database-url", url, "reconcile", "--user", "1001", "--json"])
    assert known.exit_code == 0, known.output


def test_after_the_demo_the_next_commands_see_its_data(workdir: Path) -> None:
    demo = runner.invoke(cli, ["demo", "--json"])
    assert demo.exit_code == 0, demo.output
    assert json.loads(demo.stdout)["database"] == "sqlite:///dianabot.sqlite3"
    assert (workdir / "dianabot.sqlite3").exists()  # the default every command reads
    reconciled = runner.invoke(cli, ["reconcile", "--json"])
    assert reconciled.exit_code == 0, reconciled.output
    report = json.loads(reconciled.stdout)
    assert report["consistent"] and report["position"] > 100
    status = runner.invoke(cli, ["projections", "status", "--json"])
    assert status.exit_code == 0
    assert all(s["lag"] == 0 and s["position"] > 100 for s in json.loads(status.stdout))


def test_the_demo_script_ends_before_the_present() -> None:
    """The demo's clock starts DEMO_SPAN ago: the script must take less simulated time than
    that (else events would be dated in the future), and not much less (else things would fall
    due between the demo's end and the present)."""
    clock = ManualClock()
    start = clock.now()
    with bootstrap(demo_settings(make_settings("memory://")), clock=clock) as wired:
        play(wired, clock)
    taken = clock.now() - start
    assert taken < DEMO_SPAN
    assert (DEMO_SPAN - taken).total_seconds() < 3600


# The hardening issue's "commands that only read must not create or misread a store", continued:
# a store whose events exist but whose read models were never built (written with projections
# off, or by the write side only). Reading it must not build them, and must not report them as
# caught up at position 0.

NO_READ_MODELS = [
    *READ_COMMANDS,
    ["projections", "status", "--json"],
    ["projections", "rebuild", "all", "--dry-run"],
    ["reconcile", "--fix", "--dry-run", "--json"],
]


def write_side_only(url: str) -> None:
    """A store with events and no read-model table (the write side alone wrote it)."""
    with bootstrap(make_settings(url), projections=False) as wired:
        assert wired.projections is None
        for user, name in ((1001, "Ana"), (1002, "Bruno")):
            assert wired.app.register_player(user, name, by_system()).ok


def sqlite_tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def postgres_tables(schema: str) -> set[str]:
    with psycopg.connect(POSTGRES_URL) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema]
        ).fetchall()
    return {row[0] for row in rows}


def assert_said_not_built(args: list[str], result: Result) -> None:
    assert result.exit_code == exits.UNAVAILABLE, (args, result.output)
    if "--json" in args:
        error = json.loads(result.stdout)
        assert error["error"] == "no read models" and error["exit_code"] == exits.UNAVAILABLE
        message = error["message"]
    else:
        message = result.output
    assert "not been built yet" in message, (args, message)
    assert "dianabot projections run --once" in message, (args, message)


def test_a_read_command_creates_no_read_model_on_sqlite(workdir: Path) -> None:
    path = workdir / "events-only.sqlite3"
    url = f"sqlite:///{path}"
    write_side_only(url)
    before = sqlite_tables(path)
    assert "projection_positions" not in before and "player_points" not in before
    for args in NO_READ_MODELS:
        result = runner.invoke(cli, ["--database-url", url, *args])
        assert_said_not_built(args, result)
        assert sqlite_tables(path) == before, args


def test_a_read_command_creates_no_read_model_on_postgres(workdir: Path, postgres_url: str) -> None:
    schema = postgres_url.rsplit("schema=", 1)[1]
    write_side_only(postgres_url)
    before = postgres_tables(schema)
    assert "stored_events" in before or any("events" in t for t in before)
    assert "projection_positions" not in before and "player_points" not in before
    for args in NO_READ_MODELS:
        result = runner.invoke(cli, ["--database-url", postgres_url, *args])
        assert_said_not_built(args, result)
        assert postgres_tables(schema) == before, args


def test_a_read_model_missing_from_a_built_store_is_named(workdir: Path) -> None:
    """A store whose read models were built before one of them existed (a newer version added
    it): that one is named, not created, and not shown as caught up."""
    path = workdir / "built.sqlite3"
    url = f"sqlite:///{path}"
    with bootstrap(make_settings(url)) as wired:
        assert wired.app.register_player(1001, "Ana", by_system()).ok
        assert wired.projections is not None
        wired.projections.catch_up()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE vip_funnel")
        connection.execute("DELETE FROM projection_positions WHERE name = 'vip_funnel'")
        connection.commit()
    before = sqlite_tables(path)
    for args in (["projections", "status"], ["projections", "status", "--json"], ["reconcile"]):
        result = runner.invoke(cli, ["--database-url", url, *args])
        assert_said_not_built(args, result)
        assert "vip_funnel" in result.output and "player_points" not in result.output
        assert sqlite_tables(path) == before, args
    # A command that writes builds what is missing; then the read commands work again.
    built = runner.invoke(cli, ["--database-url", url, "projections", "run", "--once"])
    assert built.exit_code == 0, built.output
    assert "vip_funnel" in sqlite_tables(path)
    status = runner.invoke(cli, ["--database-url", url, "projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert all(s["lag"] == 0 for s in json.loads(status.stdout))


def test_a_postgres_store_with_events_is_read(workdir: Path, postgres_url: str) -> None:
    """PostgreSQL's events table is `dianabot_events` (the library names it after the app), not
    SQLite's `stored_events`: a read command must find the events there, not call it empty."""
    with bootstrap(make_settings(postgres_url)) as wired:
        assert wired.app.register_player(1001, "Ana", by_system()).ok
        assert wired.projections is not None
        wired.projections.catch_up()
    base = ["--database-url", postgres_url]
    status = runner.invoke(cli, [*base, "projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert all(s["position"] == 1 and s["lag"] == 0 for s in json.loads(status.stdout))
    reconciled = runner.invoke(cli, [*base, "reconcile", "--json"])
    assert reconciled.exit_code == 0, reconciled.output
    assert json.loads(reconciled.stdout)["consistent"]
    demo = runner.invoke(cli, [*base, "demo", "--json"])  # the store holds events: refused
    assert demo.exit_code == exits.REFUSED, demo.output


def test_status_shows_an_outdated_read_model_without_marking_it(workdir: Path) -> None:
    """A read model built by another version of its projector is shown outdated; the status
    only reads, so the stored state is left for a runner to change."""
    path = workdir / "built.sqlite3"
    url = f"sqlite:///{path}"
    with bootstrap(make_settings(url)) as wired:
        assert wired.app.register_player(1001, "Ana", by_system()).ok
        assert wired.projections is not None
        wired.projections.catch_up()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(
            "UPDATE projection_positions SET version = version + 100 WHERE name = 'engagement'"
        )
        connection.commit()
    status = runner.invoke(cli, ["--database-url", url, "projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    states = {s["name"]: s["state"] for s in json.loads(status.stdout)}
    assert states.pop("engagement") == "outdated"
    assert set(states.values()) == {"ok"}
    with closing(sqlite3.connect(path)) as connection:
        stored = connection.execute(
            "SELECT state FROM projection_positions WHERE name = 'engagement'"
        ).fetchone()
    assert stored == ("ok",)
