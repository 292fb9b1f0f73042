"""`dianabot audit verify|anchor|export|import` and `reconcile --fix` on a tampered store, end
to end: exit codes and the lines a person reads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli.main import app as cli
from dianabot.application.clock import ManualClock
from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.integration.test_audit_chain import populate

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: Any) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bot.sqlite3"
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "42")
    clock = ManualClock()
    with bootstrap(make_settings(f"sqlite:///{path}"), clock=clock) as wired:
        populate(wired.app, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    return path


def edit_amount(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        position, state = connection.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%PointsAwarded' "
            "ORDER BY rowid LIMIT 1 OFFSET 5"
        ).fetchone()
        connection.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (state.replace(b'"amount":', b'"amount":9', 1), position),
        )
    return int(position)


def test_verify_passes_then_names_the_tampered_event(store: Path) -> None:
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout
    position = edit_amount(store)
    result = runner.invoke(cli, ["audit", "verify", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["problem"]["position"] == position
    assert report["problem"]["kind"] == "altered"
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"altered at position {position}" in " ".join(result.stdout.split())


def test_reconcile_fix_refuses_a_history_that_fails_verification(store: Path) -> None:
    edit_amount(store)
    result = runner.invoke(cli, ["reconcile", "--fix", "--yes", "--json"])
    assert result.exit_code == 3, result.output
    assert "fails verification" in json.loads(result.stdout)["message"]


def test_anchor_then_a_cut_tail_fails_verification(store: Path, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    result = runner.invoke(cli, ["audit", "anchor", "--output", str(anchor)])
    assert result.exit_code == 0, result.output
    position = json.loads(anchor.read_text())["position"]
    assert runner.invoke(cli, ["audit", "verify", "--anchor", str(anchor)]).exit_code == 0
    with sqlite3.connect(store) as connection:
        connection.execute("DELETE FROM stored_events WHERE rowid = ?", (position,))
        connection.execute("DELETE FROM stored_events_chain WHERE position = ?", (position,))
    result = runner.invoke(cli, ["audit", "verify", "--anchor", str(anchor), "--json"])
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["problem"]["kind"] == "truncated"


def test_bad_anchor_and_missing_key_are_usage_errors(store: Path, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["audit", "verify", "--anchor", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "cannot read" in result.stderr
    (tmp_path / "junk.json").write_text("{}")
    result = runner.invoke(cli, ["audit", "verify", "--anchor", str(tmp_path / "junk.json")])
    assert result.exit_code == 2 and "not an anchor" in result.stderr
    Path(f"{store}.audit-key").unlink()
    result = runner.invoke(cli, ["audit", "verify", "--json"])
    assert result.exit_code == 2, result.output
    assert "audit key" in json.loads(result.stdout)["error"]


def test_verify_snapshots_reports_its_own_figure(store: Path) -> None:
    result = runner.invoke(cli, ["audit", "verify", "--snapshots", "--json"])
    assert result.exit_code == 0, result.output
    snapshots = json.loads(result.stdout)["snapshots"]
    assert snapshots["ok"] and snapshots["checked"] >= 1


def test_export_and_import_through_the_cli(store: Path, tmp_path: Path, monkeypatch: Any) -> None:
    export = tmp_path / "export.jsonl"
    result = runner.invoke(cli, ["audit", "export", "--output", str(export)])
    assert result.exit_code == 0, result.output
    copy = tmp_path / "copy.sqlite3"
    Path(f"{copy}.audit-key").write_text(Path(f"{store}.audit-key").read_text())
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{copy}")
    broken = tmp_path / "broken.jsonl"
    lines = export.read_text().splitlines()
    lines[3] = lines[3].replace('"originator_version": ', '"originator_version": 1')
    broken.write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["audit", "import", str(broken)])
    assert result.exit_code == 3, result.output
    assert "line 4" in result.stderr
    result = runner.invoke(cli, ["audit", "import", str(export)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0
    assert runner.invoke(cli, ["reconcile"]).exit_code == 0
    result = runner.invoke(cli, ["audit", "import", str(export)])
    assert result.exit_code == 3 and "empty store" in result.stderr
    result = runner.invoke(cli, ["audit", "export", "--format", "csv"])
    assert result.exit_code == 2
