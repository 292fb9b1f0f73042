"""Item 10 of the hardening issue: the CLI as a newcomer meets it (global --database-url,
misspelled settings, `config`, user text never read as markup, confirmations and --dry-run, one
meaning per exit code, JSON errors, an 80-column demo, --version)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli import common, exits
from dianabot.adapters.cli.demo import DEMO_SPAN, demo_settings, play
from dianabot.adapters.cli.main import app as cli
from dianabot.application.clock import ManualClock
from dianabot.domain.ids import player_id
from sqlalchemy import select, update
from typer.testing import CliRunner

from dianabot import __version__
from tests.conftest import make_settings

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "dianabot"


@pytest.fixture
def workdir(bare_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")
    return bare_workdir


@pytest.fixture
def played(workdir: Path) -> str:
    """A store with the demo's history, its read models caught up."""
    url = f"sqlite:///{workdir / 'played.sqlite3'}"
    clock = ManualClock(datetime.now(UTC) - DEMO_SPAN)
    with bootstrap(demo_settings(make_settings(url)), clock=clock) as wired:
        play(wired, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    return url


def break_a_balance(url: str) -> None:
    with bootstrap(make_settings(url)) as wired:
        assert wired.projections is not None
        table = wired.projections.table("player_points")
        with wired.projections.store.write() as conn:
            conn.execute(
                update(table).where(table.c.player_id == player_id(1001)).values(balance=-3)
            )


def live_balance(url: str) -> int:
    with bootstrap(make_settings(url)) as wired:
        assert wired.projections is not None
        table = wired.projections.table("player_points")
        with wired.projections.store.read() as conn:
            return int(
                conn.execute(
                    select(table.c.balance).where(table.c.player_id == player_id(1001))
                ).scalar_one()
            )


def test_version() -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"dianabot {__version__}"


def test_one_global_database_url_for_every_command(workdir: Path) -> None:
    url = f"sqlite:///{workdir / 'elsewhere.sqlite3'}"
    demo = runner.invoke(cli, ["--database-url", url, "demo", "--json"])
    assert demo.exit_code == 0, demo.output
    for args in (
        ["reconcile"],
        ["projections", "status"],
        ["admin", "grant", "1001", "5", "-r", "x"],
        ["story", "publish"],
    ):
        result = runner.invoke(cli, ["--database-url", url, *args])
        assert result.exit_code == 0, (args, result.output)
    assert not (workdir / "dianabot.sqlite3").exists()  # the default was never touched
    shown = runner.invoke(cli, ["--database-url", url, "config", "--json"])
    assert json.loads(shown.stdout)["DIANABOT_DATABASE_URL"] == url


def test_a_misspelled_setting_is_reported(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIANABOT_DATABSE_URL", "sqlite:///mine.sqlite3")
    (workdir / ".env").write_text("DIANABOT_ADMIN_ID=42\n")
    result = runner.invoke(cli, ["config"])
    assert result.exit_code == 0
    warnings = result.stderr
    assert "DIANABOT_DATABSE_URL" in warnings and "did you mean DIANABOT_DATABASE_URL" in warnings
    assert "DIANABOT_ADMIN_ID " in warnings and "did you mean DIANABOT_ADMIN_IDS" in warnings
    assert ".env" in warnings
    assert sorted(p.name for p in workdir.iterdir()) == [".env"]  # config creates no store


def test_config_shows_the_resolved_settings_with_secrets_hidden(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIANABOT_BOT_TOKEN", "123456:topsecrettoken")
    monkeypatch.setenv("DIANABOT_DATABASE_URL", "postgresql+psycopg://bot:pgsecret@db/diana")
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "7, 8")
    table = runner.invoke(cli, ["config"])
    as_json = runner.invoke(cli, ["config", "--json"])
    for result in (table, as_json):
        assert result.exit_code == 0, result.output
        assert "topsecrettoken" not in result.output and "pgsecret" not in result.output
    values = json.loads(as_json.stdout)
    assert values["DIANABOT_BOT_TOKEN"] == "***"
    assert values["DIANABOT_DATABASE_URL"] == "postgresql+psycopg://bot:***@db/diana"
    assert values["DIANABOT_ADMIN_IDS"] == [7, 8]
    assert "DIANABOT_GROUP_COMMIT" in table.stdout


def test_user_text_is_never_read_as_markup(played: str) -> None:
    base = ["--database-url", played]
    award = runner.invoke(cli, [*base, "admin", "award-badge", "[/x]", "1001", "-r", "[bold]"])
    assert award.exit_code == exits.REFUSED, award.output
    assert "Traceback" not in award.output and "[/x]" in award.output
    define = runner.invoke(
        cli, [*base, "admin", "define-badge", "[/x]", "--name", "[/y]", "--description", "d"]
    )
    assert define.exit_code == exits.REFUSED and "[/x]" in define.output
    grant = runner.invoke(cli, [*base, "admin", "grant", "1001", "5", "-r", "[/z] [red]"])
    assert grant.exit_code == 0, grant.output


def test_reconcile_fix_asks_or_needs_yes(played: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--database-url", played]
    break_a_balance(played)
    no_terminal = runner.invoke(cli, [*base, "reconcile", "--fix"])
    assert no_terminal.exit_code == exits.REFUSED and "--yes" in no_terminal.output
    dry = runner.invoke(cli, [*base, "reconcile", "--fix", "--dry-run"])
    assert dry.exit_code == exits.DIFFERENCES and "dry run" in dry.output
    assert live_balance(played) == -3  # nothing repaired
    monkeypatch.setattr(common, "is_interactive", lambda: True)
    declined = runner.invoke(cli, [*base, "reconcile", "--fix"], input="n\n")
    assert declined.exit_code == exits.REFUSED and live_balance(played) == -3
    accepted = runner.invoke(cli, [*base, "reconcile", "--fix"], input="y\n")
    assert accepted.exit_code == exits.DIFFERENCES, accepted.output  # found, and repaired
    assert live_balance(played) >= 0
    assert runner.invoke(cli, [*base, "reconcile"]).exit_code == exits.OK
    monkeypatch.setattr(common, "is_interactive", lambda: False)
    json_refusal = runner.invoke(cli, [*base, "reconcile", "--fix", "--json"])
    assert json.loads(json_refusal.stdout)["exit_code"] == exits.REFUSED
    usage = runner.invoke(cli, [*base, "reconcile", "--dry-run"])
    assert usage.exit_code == exits.USAGE


def test_rebuild_and_demo_have_dry_run_and_need_yes(played: str) -> None:
    base = ["--database-url", played]
    dry = runner.invoke(cli, [*base, "projections", "rebuild", "all", "--dry-run"])
    assert dry.exit_code == 0 and "would rebuild" in dry.output
    refused = runner.invoke(cli, [*base, "projections", "rebuild", "all"])
    assert refused.exit_code == exits.REFUSED and "--yes" in refused.output
    demo_dry = runner.invoke(cli, [*base, "demo", "--dry-run", "--json"])
    assert json.loads(demo_dry.stdout) == {
        "dry_run": True,
        "database": played,
        "replaces_data": True,
    }
    demo_refused = runner.invoke(cli, [*base, "demo"])
    assert demo_refused.exit_code == exits.REFUSED and "--yes" in demo_refused.output
    replaced = runner.invoke(cli, [*base, "demo", "--yes", "--json"])
    assert replaced.exit_code == 0, replaced.output


def test_exit_codes_are_one_module_and_documented() -> None:
    codes = {
        name: value
        for name, value in vars(exits).items()
        if name.isupper() and isinstance(value, int)
    }
    assert sorted(codes.values()) == list(range(len(codes)))  # one meaning each, no gaps
    operations = (ROOT / "docs" / "operations.md").read_text()
    for name, value in codes.items():
        assert re.search(rf"\|\s*{value}\s*\|\s*`{name}`", operations), name


def test_the_demo_reads_well_in_80_columns(workdir: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")},
        "COLUMNS": "80",
        "DIANABOT_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [str(SCRIPT), "demo"], capture_output=True, text=True, env=env, cwd=workdir, timeout=300
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any("…" in line for line in lines)  # nothing cut short
    assert any("Ana" in line and "1001" in line for line in lines)


def run_at_a_terminal(args: list[str], answer: str, cwd: Path) -> tuple[int, str]:
    """Run the console script with stdin, stdout and stderr on a pseudo-terminal, typing
    `answer`; return its exit code and everything it wrote."""
    primary, secondary = pty.openpty()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")},
        "COLUMNS": "80",
        "DIANABOT_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [str(SCRIPT), *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(secondary)
    os.write(primary, answer.encode())
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)
    return process.wait(timeout=120), output.decode(errors="replace")


def test_at_a_terminal_destructive_commands_ask(played: str, workdir: Path) -> None:
    base = ["--database-url", played]
    code, output = run_at_a_terminal([*base, "reconcile", "--fix"], "n\n", workdir)
    assert code == exits.REFUSED and "[y/N]" in output and "cancelled" in output
    code, output = run_at_a_terminal([*base, "projections", "rebuild", "all"], "y\n", workdir)
    assert code == exits.OK, output
    assert "rebuilding 8 read models" in output  # a short label: the bar keeps its room
    assert "rebuilt" in output
