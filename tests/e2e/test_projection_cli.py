"""`dianabot projections status|rebuild|run` and `dianabot reconcile` end to end (SQLite file).

The CLI runs on the system clock, so the seeded history is played in the recent past (VIP periods
then end, or not, as they would have in real time).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli.main import app as cli
from dianabot.application.clock import ManualClock
from dianabot.domain.ids import player_id
from dianabot.projections.registry import ALL_NAMES
from sqlalchemy import update
from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.integration.test_projections import ANA, play

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", url)
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "42")
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")
    clock = ManualClock(datetime.now(UTC) - timedelta(days=10))
    with bootstrap(make_settings(url), clock=clock) as wired:
        play(wired.app, clock)
    return url


def invoke(*args: str) -> Any:
    return runner.invoke(cli, list(args))


def as_json(result: Any) -> Any:
    return json.loads(result.stdout)


def test_status_shows_positions_and_lag_then_run_catches_up(database: str) -> None:
    before = invoke("projections", "status", "--json")
    assert before.exit_code == 0, before.output
    statuses = {s["name"]: s for s in as_json(before)}
    assert set(statuses) == set(ALL_NAMES)
    head = statuses["player_points"]["head"]
    assert head > 0 and all(s["position"] == 0 and s["lag"] == head for s in statuses.values())

    assert invoke("projections", "run", "--once").exit_code == 0
    after = as_json(invoke("projections", "status", "--json"))
    assert all(s["position"] == head and s["lag"] == 0 and s["state"] == "ok" for s in after)
    table = invoke("projections", "status")
    assert "player_points" in table.stdout and "lag" in table.stdout


def test_rebuild_one_or_all(database: str) -> None:
    one = invoke("projections", "rebuild", "leaderboard", "--yes", "--json")
    assert one.exit_code == 0, one.output
    assert as_json(one)["names"] == ["leaderboard"] and as_json(one)["swapped"]
    everything = invoke("projections", "rebuild", "all", "--yes")
    assert everything.exit_code == 0, everything.output
    assert "rebuilt" in everything.stdout
    unknown = invoke("projections", "rebuild", "nope")
    assert unknown.exit_code == 2 and "unknown projection" in unknown.output


def test_reconcile_exit_codes_report_and_fix(database: str) -> None:
    invoke("projections", "run", "--once")
    clean = invoke("reconcile", "--json")
    assert clean.exit_code == 0, clean.output
    assert as_json(clean)["consistent"]

    with bootstrap(make_settings(database)) as wired:
        projections = wired.projections
        assert projections is not None
        table = projections.table("player_points")
        with projections.store.write() as conn:
            conn.execute(
                update(table).where(table.c.player_id == player_id(ANA)).values(balance=-3)
            )

    found = invoke("reconcile", "--json")
    assert found.exit_code == 1
    report = as_json(found)
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["negative_balance"]["count"] == 1 and checks["row_differs"]["count"] == 1
    assert checks["negative_balance"]["examples"][0]["live"]["balance"] == -3

    one_user = invoke("reconcile", "--user", str(ANA))
    assert one_user.exit_code == 1 and "negative_balance" in one_user.stdout

    fixed = invoke("reconcile", "--fix", "--yes", "--json")
    assert fixed.exit_code == 1  # differences were found (and repaired: see the fixes)
    assert [f["outcome"] for f in as_json(fixed)["fixes"]] == ["ok"]
    again = invoke("reconcile")
    assert again.exit_code == 0 and "consistent" in again.stdout


def test_status_exits_non_zero_when_a_projection_failed(database: str) -> None:
    with bootstrap(make_settings(database)) as wired:
        projections = wired.projections
        assert projections is not None
        positions = projections.table("player_points").metadata.tables["projection_positions"]
        with projections.store.write() as conn:
            conn.execute(
                update(positions)
                .where(positions.c.name == "engagement")
                .values(state="failed", failed_position=3, last_error="CheckedIn at 3: boom")
            )
    result = invoke("projections", "status")
    assert result.exit_code == 1
    assert "failed" in result.stdout and "boom" in result.stdout


def test_rebuild_and_reconcile_of_a_damaged_row_report_it_without_a_traceback(
    database: str,
) -> None:
    assert invoke("projections", "run", "--once").exit_code == 0
    with sqlite3.connect(database.removeprefix("sqlite:///")) as connection:
        (position,) = connection.execute(
            "SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 2",
            (player_id(ANA).hex,),
        ).fetchone()
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (b"\0", position))

    rebuilt = invoke("projections", "rebuild", "all", "--yes")
    assert rebuilt.exit_code == 1
    assert "rebuild failed, live tables untouched" in rebuilt.output
    assert f"at {position}" in rebuilt.output and "Traceback" not in rebuilt.output

    found = invoke("reconcile", "--json")
    assert found.exit_code == 1 and "Traceback" not in found.output
    checks = {c["check"]: c for c in as_json(found)["checks"]}
    assert checks["corrupt_history"]["examples"][0]["key"] == f"position:{position}"
    # The damaged row also breaks the audit chain: --fix refuses to repair from that history.
    fixed = invoke("reconcile", "--fix", "--yes", "--json")
    assert fixed.exit_code == 3 and "Traceback" not in fixed.output
    assert str(position) in fixed.output
