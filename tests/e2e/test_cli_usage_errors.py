"""The hardening issue's "with --json, errors are JSON too", for click's own usage errors: an
unknown option or command, a missing argument, a value of the wrong type. With --json among the
arguments they are one JSON object on stdout, like every other error (`common.fail`), exit 2;
without it, click's message for a person, exit 2. Help, --version and the commands' own exit
codes are untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.main import app as cli
from typer.testing import CliRunner

from dianabot import __version__

runner = CliRunner()
SCRIPT = Path(sys.executable).parent / "dianabot"

USAGE_ERRORS = {
    "unknown option": (["reconcile", "--json", "--bogus"], "--bogus"),
    "unknown global option": (["--json"], "--json"),
    "missing argument": (["projections", "rebuild", "--json"], "name"),
    "missing option": (["admin", "define-badge", "b", "--name", "n", "--json"], "--description"),
    "not an int": (["reconcile", "--user", "abc", "--json"], "--user"),
    "not an int (argument)": (["admin", "grant", "x", "5", "-r", "r", "--json"], "'user'"),
    "unknown command": (["frobnicate", "--json"], "frobnicate"),
    "unknown subcommand": (["projections", "frob", "--json"], "frob"),
    "option the command lacks": (["projections", "run", "--once", "--json"], "--json"),
    "bad parameter raised by a command": (
        ["admin", "define-badge", "b", "--name", "n", "--description", "d", "--criteria", "{"],
        "criteria",
    ),
}


@pytest.fixture
def workdir(bare_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")
    return bare_workdir


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_with_json_a_usage_error_is_json(workdir: Path, case: str) -> None:
    args, named = USAGE_ERRORS[case]
    if "--json" not in args:
        args = [*args, "--json"]
    result = runner.invoke(cli, args)
    assert result.exit_code == exits.USAGE, result.output
    error = json.loads(result.stdout)  # stdout is the JSON object and nothing else
    assert error == {"error": "bad usage", "message": error["message"], "exit_code": 2}
    assert named in error["message"]
    assert "Usage:" not in result.output and "╭" not in result.output
    assert list(workdir.iterdir()) == []  # no store was created


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_without_json_a_usage_error_is_for_a_person(workdir: Path, case: str) -> None:
    args = [a for a in USAGE_ERRORS[case][0] if a != "--json"]
    if case in {"unknown global option", "option the command lacks"}:
        args = [*args, "--bogus"]
    result = runner.invoke(cli, args)
    assert result.exit_code == exits.USAGE, result.output
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "Invalid value" in result.stderr, result.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.stderr)


def test_help_version_and_exit_codes_are_kept(workdir: Path) -> None:
    assert runner.invoke(cli, ["--version"]).stdout.strip() == f"dianabot {__version__}"
    for args in (["--help"], ["reconcile", "--help", "--json"], ["projections", "--help"]):
        shown = runner.invoke(cli, args)
        assert shown.exit_code == 0 and "Usage:" in shown.stdout, (args, shown.output)
    missing = runner.invoke(cli, ["reconcile", "--json"])  # typer.Exit(4) from the command
    assert missing.exit_code == exits.UNAVAILABLE
    assert json.loads(missing.stdout)["exit_code"] == exits.UNAVAILABLE
    dry = runner.invoke(cli, ["demo", "--dry-run", "--json"])
    assert dry.exit_code == 0 and json.loads(dry.stdout)["dry_run"] is True
    assert list(workdir.iterdir()) == []


def test_the_console_script_answers_json(workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")}
    done = subprocess.run(
        [str(SCRIPT), "reconcile", "--user", "abc", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=60,
    )
    assert done.returncode == exits.USAGE, done.stderr
    assert json.loads(done.stdout)["exit_code"] == exits.USAGE
    version = subprocess.run(
        [str(SCRIPT), "--version"], capture_output=True, text=True, env=env, timeout=60
    )
    assert version.returncode == 0 and version.stdout.strip() == f"dianabot {__version__}"
