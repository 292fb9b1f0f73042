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


AUDIT_READS = [["audit", "verify"], ["audit", "anchor"], ["audit", "export"]]


@pytest.mark.parametrize("args", AUDIT_READS, ids=" ".join)
def test_audit_reads_create_no_store(tmp_path: Path, monkeypatch: Any, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    result = runner.invoke(cli, args)
    assert result.exit_code == 4, result.output
    assert list(tmp_path.iterdir()) == []


def test_audit_reads_create_no_postgres_schema(postgres_url: str) -> None:
    import psycopg

    from tests.conftest import POSTGRES_URL

    schema = postgres_url.rsplit("schema=", 1)[1]
    for args in AUDIT_READS:
        result = runner.invoke(cli, ["--database-url", postgres_url, *args])
        assert result.exit_code == 4, (args, result.output)
    with psycopg.connect(POSTGRES_URL) as connection:
        found = connection.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [schema]
        ).fetchone()
    assert found == (0,)


@pytest.mark.parametrize(
    "assignment",
    ["state = replace(state, '\"amount\":', '\"amount\":9')", "state = NULL", "topic = 7"],
)
def test_a_field_rewritten_to_another_type_is_named_not_a_traceback(
    store: Path, assignment: str
) -> None:
    """SQLite keeps whatever type SQL writes (`replace` turns the state's BLOB into TEXT)."""
    position = edit_amount(store)  # a PointsAwarded event, edited again below
    with sqlite3.connect(store) as connection:
        connection.execute(f"UPDATE stored_events SET {assignment} WHERE rowid = ?", (position,))
    result = runner.invoke(cli, ["audit", "verify", "--json"])
    assert result.exit_code == 1, result.output
    problem = json.loads(result.stdout)["problem"]
    assert (problem["position"], problem["kind"]) == (position, "altered")
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"altered at position {position}" in " ".join(result.stdout.split())


@pytest.mark.postgres
def test_postgres_needs_its_key_file_named_and_reads_create_none(
    postgres_url: str, tmp_path: Path, monkeypatch: Any
) -> None:
    """PostgreSQL has no default place for the audit key (a guessed one, the working
    directory, made a process started elsewhere fail every write): a command that writes or
    verifies without DIANABOT_AUDIT_KEY_FILE is a usage error (exit 2); one that only reads
    runs and creates nothing."""
    monkeypatch.chdir(tmp_path)
    clock = ManualClock()
    with bootstrap(make_settings(postgres_url), clock=clock) as wired:  # the conftest's key
        populate(wired.app, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    monkeypatch.setenv("DIANABOT_DATABASE_URL", postgres_url)
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "42")
    assert runner.invoke(cli, ["audit", "verify"]).exit_code == 0  # with the key
    monkeypatch.delenv("DIANABOT_AUDIT_KEY_FILE")
    before = sorted(tmp_path.iterdir())
    for args in (["admin", "grant", "1003", "5", "-r", "thanks"], ["audit", "verify", "--json"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        assert "DIANABOT_AUDIT_KEY_FILE" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["audit", "history", "1003", "--json"])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("DIANABOT_AUDIT_KEY_FILE", str(tmp_path / "elsewhere.key"))
    result = runner.invoke(cli, ["audit", "verify"])
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert sorted(tmp_path.iterdir()) == before  # no key file made by a read
