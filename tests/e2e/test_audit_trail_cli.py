"""`dianabot audit history|balance|leaderboard|explain|badges` on the demo's database: tables
for people, JSON (Lines) for machines, one clear line and exit 2 for an unknown user or a bad
or future date, exit 4 and nothing created without a store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli.demo import DEMO_SPAN, demo_settings, play
from dianabot.adapters.cli.main import app as cli
from dianabot.application.clock import ManualClock
from typer.testing import CliRunner, Result

from tests.conftest import make_settings

runner = CliRunner()
ANA = 1001


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'demo.sqlite3'}"
    clock = ManualClock(datetime.now(UTC) - DEMO_SPAN)
    with bootstrap(demo_settings(make_settings(url)), clock=clock) as wired:
        play(wired, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    yield url


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")


def audit(url: str, *args: str) -> Result:
    return runner.invoke(cli, ["--database-url", url, "audit", *args])


def test_history_is_json_lines_across_the_users_aggregates(demo_url: str) -> None:
    result = audit(demo_url, "history", str(ANA), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"player", "badge-award", "story-progress", "vip-token"} <= {
        x["aggregate"] for x in lines
    }
    assert [x["position"] for x in lines] == sorted(x["position"] for x in lines)
    assert all(x["causation"] and x["actor"] for x in lines)
    typed = audit(demo_url, "history", str(ANA), "--type", "BadgeAwarded", "--json")
    assert {json.loads(x)["type"] for x in typed.stdout.splitlines()} == {"BadgeAwarded"}
    table = audit(demo_url, "history", str(ANA), "--type", "VipGranted")
    assert table.exit_code == 0 and "VipGranted" in table.stdout and "event(s)" in table.stdout


def test_history_between_dates(demo_url: str) -> None:
    everything = audit(demo_url, "history", str(ANA), "--json").stdout.splitlines()
    first_day = json.loads(everything[0])["at"][:10]
    result = audit(demo_url, "history", str(ANA), "--until", first_day, "--json")
    assert result.exit_code == 0, result.output
    some = [json.loads(x) for x in result.stdout.splitlines()]
    assert 0 < len(some) < len(everything)
    assert all(x["at"][:10] == first_day for x in some)


def test_balance_and_leaderboard_as_of_now_match_the_demo(demo_url: str) -> None:
    balance = audit(demo_url, "balance", str(ANA), "--as-of", "now", "--json")
    assert balance.exit_code == 0, balance.output
    found = json.loads(balance.stdout)
    explained = json.loads(audit(demo_url, "explain", str(ANA), "--json").stdout)
    assert found["balance"] == explained["read_model"]["balance"] > 0
    assert found["badges"] == explained["read_model"]["badges"]
    board = audit(demo_url, "leaderboard", "--as-of", "now", "--json")
    assert board.exit_code == 0, board.output
    rows = json.loads(board.stdout)["rows"]
    assert len(rows) == 5 and rows[0]["points"] >= rows[-1]["points"]
    people = audit(demo_url, "leaderboard", "--as-of", "now")
    assert people.exit_code == 0 and "Leaderboard" in people.stdout


def test_as_of_the_first_day_is_less_than_now(demo_url: str) -> None:
    start = (datetime.now(UTC) - DEMO_SPAN + timedelta(hours=1)).isoformat()
    early = json.loads(audit(demo_url, "balance", str(ANA), "--as-of", start, "--json").stdout)
    now = json.loads(audit(demo_url, "balance", str(ANA), "--as-of", "now", "--json").stdout)
    assert early["position"] < now["position"]
    assert early["lifetime"] < now["lifetime"]
    person = audit(demo_url, "balance", str(ANA), "--as-of", start)
    assert person.exit_code == 0 and "balance" in person.stdout


def test_explain_adds_up_and_badges_are_open_badges(demo_url: str) -> None:
    result = audit(demo_url, "explain", str(ANA))
    assert result.exit_code == 0, result.output
    assert "the events add up to the read model" in result.stdout
    data = json.loads(audit(demo_url, "explain", str(ANA), "--json").stdout)
    assert data["consistent"] and data["totals"]["balance"] == data["read_model"]["balance"]
    assert all(b["evidence"] and b["cause"]["text"] for b in data["badges"])
    badges = audit(demo_url, "badges", str(ANA), "--format", "openbadges")
    assert badges.exit_code == 0, badges.output
    issued = json.loads(badges.stdout)
    assert {c["credentialSubject"]["achievement"]["tag"][0] for c in issued} == set(
        data["totals"]["badges"]
    )
    assert all(len(c["evidence"]) >= 2 for c in issued)  # the award and what earned it


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["history", "999"], "unknown user"),
        (["explain", "999"], "unknown user"),
        (["balance", "999", "--as-of", "now"], "unknown user"),
        (["balance", str(ANA), "--as-of", "yesterday"], "bad date"),
        (["balance", str(ANA), "--as-of", "2026-02-30"], "bad date"),
        (["leaderboard", "--as-of", "2999-01-01"], "future date"),
        (["history", str(ANA), "--since", "2999-01-01T00:00:00Z"], "future date"),
        (["badges", str(ANA), "--format", "png"], "bad format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(demo_url: str, args: list[str], kind: str) -> None:
    result = audit(demo_url, *args)
    assert result.exit_code == 2, result.output
    assert kind in result.output and "Traceback" not in result.output
    as_json = audit(demo_url, *args, "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"] == kind


def test_without_a_store_nothing_is_created(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    for args in (["history", "1"], ["leaderboard", "--as-of", "now"], ["explain", "1"]):
        result = audit(url, *args)
        assert result.exit_code == 4, result.output
    assert list(tmp_path.iterdir()) == []


def test_the_audit_commands_on_postgres(postgres_url: str) -> None:
    from tests.integration.test_projections import ANA as PLAYER
    from tests.integration.test_projections import play as play_small

    clock = ManualClock(datetime.now(UTC) - timedelta(days=10))
    with bootstrap(make_settings(postgres_url), clock=clock) as wired:
        play_small(wired.app, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    history = audit(postgres_url, "history", str(PLAYER), "--json")
    assert history.exit_code == 0, history.output
    assert len(history.stdout.splitlines()) > 10
    explained = audit(postgres_url, "explain", str(PLAYER), "--json")
    assert explained.exit_code == 0, explained.output
    assert json.loads(explained.stdout)["consistent"]
    board = json.loads(audit(postgres_url, "leaderboard", "--as-of", "now", "--json").stdout)
    assert board["position_by"].startswith("commit time") and board["rows"][0]["points"] > 0
    early = (datetime.now(UTC) - timedelta(days=20)).isoformat()
    before = json.loads(
        audit(postgres_url, "balance", str(PLAYER), "--as-of", early, "--json").stdout
    )
    assert before["position"] == 0 and not before["registered"]
