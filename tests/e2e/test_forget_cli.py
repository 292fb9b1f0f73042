"""`dianabot admin forget USER`: confirmation, exit codes, and the commands that read history
afterwards (events tail, reconcile, projections rebuild) on a SQLite store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli.main import app as cli
from dianabot.application.results import Origin
from typer.testing import CliRunner

from tests.conftest import make_settings

runner = CliRunner()
ANA, LUIS = 7, 8


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bot.sqlite3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", f"sqlite:///{path}")
    with bootstrap(make_settings(f"sqlite:///{path}")) as wired:
        for user, name in ((ANA, "Ana Secreta"), (LUIS, "Luis")):
            assert wired.app.register_player(user, name, Origin.telegram(user, user), "es").ok
            assert wired.app.check_in(user, Origin.telegram(100 + user, user)).ok
        assert wired.projections is not None
        wired.projections.catch_up()
    return path


def test_forget_asks_first_then_erases(store: Path) -> None:
    refused = runner.invoke(cli, ["admin", "forget", str(ANA)])
    assert refused.exit_code == 3 and "--yes" in refused.output

    done = runner.invoke(cli, ["admin", "forget", str(ANA), "--yes", "--json"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["outcome"] == "ok" and [e["name"] for e in answer["events"]] == [
        "PlayerForgotten"
    ]
    assert answer["details"]["keys_deleted"] == 1 and answer["details"]["read_model_rows"] == 1

    with sqlite3.connect(store) as db:
        subjects = {row[0] for row in db.execute("SELECT subject FROM personal_keys")}
        assert subjects == {f"tg:user:{LUIS}"}
        names = dict(db.execute("SELECT telegram_id, display_name FROM player_points"))
        assert names == {ANA: None, LUIS: "Luis"}
        states = [bytes(row[0]) for row in db.execute("SELECT state FROM stored_events")]
        assert not any(b"Ana Secreta" in state for state in states)

    tail = runner.invoke(cli, ["events", "tail", "--user", str(ANA), "--json"])
    assert tail.exit_code == 0, tail.output
    entries = json.loads(tail.stdout)
    registered = next(e for e in entries if e["type"] == "PlayerRegistered")
    assert registered["fields"]["display_name"] is None and registered["erased"] is True
    assert entries[-1]["type"] == "PlayerForgotten"
    people = runner.invoke(cli, ["events", "tail", "--user", str(ANA)], env={"COLUMNS": "300"})
    assert people.exit_code == 0 and "(borrado)" in people.output

    assert runner.invoke(cli, ["reconcile", "--json"]).exit_code == 0
    assert runner.invoke(cli, ["projections", "rebuild", "player_points", "--yes"]).exit_code == 0
    assert runner.invoke(cli, ["reconcile"]).exit_code == 0

    again = runner.invoke(cli, ["admin", "forget", str(ANA), "--yes", "--json"])
    assert again.exit_code == 0 and json.loads(again.stdout)["events"] == []


def test_forget_refuses_unknown_users_and_bad_ids(store: Path) -> None:
    unknown = runner.invoke(cli, ["admin", "forget", "999", "--yes"])
    assert unknown.exit_code == 3 and "unknown" in unknown.output
    bad = runner.invoke(cli, ["admin", "forget", "ana", "--yes"])
    assert bad.exit_code == 2
    stranger = runner.invoke(cli, ["admin", "forget", str(ANA), "--yes", "--admin", "555"])
    assert stranger.exit_code == 3 and "not_admin" in stranger.output
