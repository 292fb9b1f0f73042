"""Item 6 of the hardening issue: a bad setting or an unusable store is one line naming the
setting, exit code 2, nothing created, and no password in any message or log line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from dianabot.adapters.cli.main import app as cli
from dianabot.adapters.eventstore import database as database_module
from psycopg import sql
from typer.testing import CliRunner

from tests.conftest import POSTGRES_URL, _postgres_or_skip

runner = CliRunner()
SECRET = "s3cretpw"


@pytest.fixture
def workdir(bare_workdir: Path) -> Path:
    return bare_workdir


def one_error_line(output: str, setting: str) -> None:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert setting in lines[0]


def test_admin_ids_that_are_not_numbers(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", "abc")
    result = runner.invoke(cli, ["admin", "grant", "7", "5", "-r", "x"])
    assert result.exit_code == 2
    one_error_line(result.output, "DIANABOT_ADMIN_IDS")
    assert list(workdir.iterdir()) == []  # no default store created


def test_a_log_level_that_does_not_exist(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "LOUD")
    result = runner.invoke(cli, ["config"])
    assert result.exit_code == 2
    one_error_line(result.output, "DIANABOT_LOG_LEVEL")


def test_a_file_that_is_not_a_sqlite_database(workdir: Path) -> None:
    path = workdir / "notes.sqlite3"
    content = b"these are my notes, not a database\n" * 10
    path.write_bytes(content)
    result = runner.invoke(
        cli, ["--database-url", f"sqlite:///{path}", "admin", "grant", "7", "5", "-r", "x"]
    )
    assert result.exit_code == 2
    one_error_line(result.output, "DIANABOT_DATABASE_URL")
    assert "not a database" in result.output
    assert path.read_bytes() == content
    assert sorted(p.name for p in workdir.iterdir()) == ["notes.sqlite3"]  # no -wal, no -shm


def test_a_directory_without_write_access(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite runs as root, for whom chmod does not deny access: ask os.access to say no.
    readonly = workdir / "ro"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        database_module.os,
        "access",
        lambda path, mode: False if Path(path) == readonly else real_access(path, mode),
    )
    url = f"sqlite:///{readonly / 'bot.sqlite3'}"
    result = runner.invoke(cli, ["--database-url", url, "admin", "grant", "7", "5", "-r", "x"])
    assert result.exit_code == 2
    one_error_line(result.output, "DIANABOT_DATABASE_URL")
    assert "write access" in result.output
    assert list(readonly.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://bot:{SECRET}@db.example/diana",
        f"postgresql://bot:{SECRET}@db.example:notaport/diana",
        f"sqlite+pysqlcipher://:{SECRET}@/diana.db",
    ],
)
def test_a_database_url_that_cannot_work_never_shows_its_password(workdir: Path, url: str) -> None:
    for args in (["admin", "grant", "7", "5", "-r", "x"], ["reconcile", "--json"], ["config"]):
        result = runner.invoke(cli, ["--database-url", url, *args])
        assert SECRET not in result.output, args
        if args[0] != "config":
            assert result.exit_code == 2, result.output
    assert list(workdir.iterdir()) == []


def test_no_password_in_the_log_either(workdir: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")},
        "DIANABOT_DATABASE_URL": f"postgresql+psycopg://bot:{SECRET}@127.0.0.1:1/diana",
        "DIANABOT_LOG_FORMAT": "json",
        "DIANABOT_LOG_LEVEL": "DEBUG",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dianabot"), "admin", "grant", "7", "5", "-r", "x"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=60,
    )
    assert done.returncode == 4  # unreachable: the store, not the setting
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_schema_name_with_a_quote_is_refused_before_anything_is_created(
    workdir: Path,
) -> None:
    _postgres_or_skip()
    schema = f'x_{uuid.uuid4().hex[:8]}"; drop'
    separator = "&" if "?" in POSTGRES_URL else "?"
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    result = runner.invoke(
        cli,
        [
            "--database-url",
            f"{url}{separator}schema={schema}",
            "admin",
            "grant",
            "7",
            "5",
            "-r",
            "x",
        ],
    )
    assert result.exit_code == 2
    one_error_line(result.output, "DIANABOT_DATABASE_URL")
    assert "schema" in result.output
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        found = connection.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [schema]
        ).fetchone()
        if found != (0,):  # a regression: clean up the shared server, then fail
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert found == (0,)
