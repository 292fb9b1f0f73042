"""`dianabot health`, `dianabot status` and `dianabot events tail [--follow]` end to end (SQLite
file; `--follow` as a real process, stopped once it printed an event written after it started).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli.main import app as cli
from dianabot.adapters.eventstore.log import event_log
from dianabot.application.clock import ManualClock
from dianabot.application.policies import POLICIES
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from dianabot.projections.registry import ALL_NAMES
from sqlalchemy import update
from typer.testing import CliRunner

from tests.conftest import audit_key_env, make_settings
from tests.integration.test_projections import ANA, BRUNO, play

runner = CliRunner()
POLICY_NAMES = [policy.name for policy in POLICIES]
SCRIPT = Path(sys.executable).parent / "dianabot"


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


def head(url: str) -> int:
    with bootstrap(make_settings(url), projections=False, policies=False) as wired:
        return event_log(wired.app).head()


# ----- health and status ----------------------------------------------------------------------


def test_health_reports_every_module_and_its_status(database: str) -> None:
    position = head(database)
    fresh = invoke("health", "--json")
    assert fresh.exit_code == 0, fresh.output
    report = as_json(fresh)
    assert report["status"] == "ok"  # behind, but within the threshold
    store = report["modules"]["event_store"]
    assert store["reachable"] and store["head"] == position and store["latency_ms"] >= 0
    projections = {p["name"]: p for p in report["modules"]["projections"]}
    assert set(projections) == set(ALL_NAMES)
    assert all(p["position"] == 0 and p["lag"] == position for p in projections.values())
    assert [p["name"] for p in report["modules"]["policies"]] == POLICY_NAMES
    assert report["modules"]["telegram"]["status"] == "not running"

    strict = invoke("health", "--lag-threshold", "5")
    assert strict.exit_code == 0, strict.output  # degraded is not failing
    assert "DEGRADED" in strict.stdout and "events behind" in strict.stdout
    assert "Recommendations" in strict.stdout and "dianabot workers" in strict.stdout

    assert invoke("projections", "run", "--once").exit_code == 0
    caught_up = as_json(invoke("health", "--json", "--lag-threshold", "5"))
    assert all(p["lag"] == 0 for p in caught_up["modules"]["projections"])
    behind = [f"policy {name} is {position} events behind (threshold 5)" for name in POLICY_NAMES]
    assert caught_up["reasons"] == behind

    with bootstrap(make_settings(database), projections=True, policies=False) as wired:
        assert wired.projections is not None
        positions = wired.projections.table("player_points").metadata.tables["projection_positions"]
        with wired.projections.store.write() as conn:
            conn.execute(
                update(positions)
                .where(positions.c.name == "engagement")
                .values(state="failed", failed_position=3, last_error="CheckedIn at 3: boom")
            )
    failing = invoke("health")
    assert failing.exit_code == 1
    assert "FAILING" in failing.stdout and "boom" in failing.stdout
    assert "dianabot projections rebuild engagement" in failing.stdout
    assert as_json(invoke("health", "--json"))["status"] == "failing"


def test_health_of_an_unreachable_store_is_failing(database: str) -> None:
    closed = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    result = invoke("--database-url", closed, "health", "--json")
    assert result.exit_code == 1, result.output
    report = as_json(result)
    assert report["status"] == "failing"
    assert report["modules"]["event_store"]["reachable"] is False
    assert "DIANABOT_DATABASE_URL" in report["recommendations"][0]


def test_status_is_compact(database: str) -> None:
    invoke("projections", "run", "--once")
    result = invoke("status", "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["head"] == head(database) and report["counts"] == {"players": 3}
    names = [(s["group"], s["name"]) for s in report["subscriptions"]]
    assert names == [("projection", n) for n in ALL_NAMES] + [("policy", n) for n in POLICY_NAMES]
    table = invoke("status")
    assert table.exit_code == 0 and "players 3" in table.stdout and "player_points" in table.stdout


def test_read_only_commands_create_no_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "none.sqlite3"
    for args in (["health"], ["status"], ["events", "tail"]):
        result = invoke("--database-url", f"sqlite:///{missing}", *args, "--json")
        assert result.exit_code == 4, (args, result.output)
        assert as_json(result)["error"] == "no store"
    assert not missing.exists()


# ----- events tail ----------------------------------------------------------------------------


def test_tail_shows_the_last_events_from_the_store(database: str) -> None:
    last = head(database)
    result = invoke("events", "tail", "--json")
    assert result.exit_code == 0, result.output
    entries = as_json(result)
    assert [e["position"] for e in entries] == list(range(last - 19, last + 1))
    newest = entries[-1]
    assert newest["type"] and newest["causation"] and newest["actor"] and newest["at"]
    assert newest["stream"] and newest["version"] >= 1

    three = as_json(invoke("events", "tail", "--limit", "3", "--json"))
    assert [e["position"] for e in three] == [last - 2, last - 1, last]

    reactions = as_json(
        invoke("events", "tail", "--type", "reactionrecorded", "-n", "50", "--json")
    )
    assert len(reactions) == 12 and {e["type"] for e in reactions} == {"ReactionRecorded"}
    assert all(e["user"] == ANA or e["stream"] == str(player_id(ANA)) for e in reactions)
    assert reactions[0]["summary"].startswith("post=chan:0")

    table = invoke("events", "tail", "-n", "5")
    assert table.exit_code == 0 and "Events of all users" in table.stdout


def test_tail_of_one_user_and_of_some_types(database: str) -> None:
    bruno = as_json(invoke("events", "tail", "--user", str(BRUNO), "-n", "100", "--json"))
    assert bruno and all(e["user"] == BRUNO for e in bruno)
    types = {e["type"] for e in bruno}
    # The player's and the story progress's streams.
    assert {"PlayerRegistered", "VipGateHit", "VipGranted", "PointsAdjusted"} <= types
    assert "ReactionRecorded" not in types  # Ana's
    positions = [e["position"] for e in bruno]
    assert positions == sorted(positions)

    mixed = invoke(
        "events", "tail", "--user", str(ANA), "--type", "CheckedIn", "--type", "BadgeAwarded",
        "--json",
    )  # fmt: skip
    found = as_json(mixed)
    assert {e["type"] for e in found} == {"CheckedIn", "BadgeAwarded"}
    assert sum(e["type"] == "CheckedIn" for e in found) == 2

    unknown = invoke("events", "tail", "--user", "999", "--json")
    assert unknown.exit_code == 2 and as_json(unknown)["error"] == "unknown user"


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        into.put(line)
    into.put("")


def test_follow_prints_new_events_until_stopped(database: str, tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")},
        **audit_key_env(database),
        "DIANABOT_DATABASE_URL": database,
        "DIANABOT_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [str(SCRIPT), "events", "tail", "--follow", "--user", str(BRUNO), "-n", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))  # the last event of Bruno's so far
        assert first["user"] == BRUNO
        with bootstrap(make_settings(database), projections=False, policies=False) as wired:
            app = wired.app
            assert app.react(ANA, "chan:new", "❤️", Origin.telegram(90001, ANA)).ok  # not his
            assert app.react(BRUNO, "chan:new", "❤️", Origin.telegram(90002, BRUNO)).ok
        new = json.loads(lines.get(timeout=30))
        assert (new["type"], new["user"]) == ("ReactionRecorded", BRUNO)
        assert new["position"] > first["position"] and new["causation"] == "tg:0:update:90002"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
