"""Export and import with the chain, and backups restored into an empty store: afterwards the
copy verifies and reconciles; a corrupted export is refused with the line that fails."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.chain import AuditChain, KeyFile
from dianabot.adapters.eventstore.transfer import (
    ImportRefused,
    StoreNotEmpty,
    export_lines,
    import_lines,
)
from dianabot.application.clock import ManualClock
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, _postgres_or_skip, make_settings
from tests.integration.test_audit_chain import populate


@pytest.fixture
def empty_url(shared_database_url: str, tmp_path: Path) -> Iterator[str]:
    """Another, empty store of the same kind (SQLite file; PostgreSQL schema, dropped after)."""
    if shared_database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'copy.sqlite3'}"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield shared_database_url.rsplit("schema=", 1)[0] + f"schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


def key_settings(url: str, key: Path) -> Any:
    return make_settings(url, audit_key_file=str(key))


@pytest.fixture
def source(shared_database_url: str, tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    key = tmp_path / "audit.key"
    with bootstrap(key_settings(shared_database_url, key), clock=clock) as wired:
        populate(wired.app, clock)
        assert wired.policies is not None
        wired.policies.catch_up()  # subscribers have positions to export
        assert wired.projections is not None
        wired.projections.catch_up()
        yield wired


def exported(wired: Services) -> list[str]:
    return list(export_lines(wired.app))


def test_export_then_import_into_an_empty_store_verifies_and_reconciles(
    source: Services, empty_url: str, tmp_path: Path
) -> None:
    lines = exported(source)
    header, end = json.loads(lines[0]), json.loads(lines[-1])
    assert header["dianabot_export"] == 1 and end["end"] is True
    assert end["events"] == source.app.recorder.max_notification_id()
    with bootstrap(key_settings(empty_url, tmp_path / "audit.key")) as copy:
        summary = import_lines(copy.app, lines)
        assert summary.events == end["events"] and summary.tracking == end["tracking"]
        assert copy.projections is not None
        copy.projections.catch_up()
        report = AuditChain(copy.app).verify()
        assert report.ok, report.problem
        source_head = AuditChain(source.app).head()
        assert report.head == source_head  # same positions, same links
        assert exported(copy) == lines  # byte for byte the same export
        assert copy.projections.reconcile().consistent  # (which records its summary)
        # The copy goes on: a new command is chained after the imported head.
        from dianabot.application.results import Origin

        assert copy.app.register_player(7777, "new", Origin.telegram(424242, 7777)).ok
        assert AuditChain(copy.app).verify().ok


def test_import_refuses_a_store_that_is_not_empty(source: Services) -> None:
    with pytest.raises(StoreNotEmpty):
        import_lines(source.app, exported(source))


@pytest.mark.parametrize(
    ("corruption", "line"),
    [
        ("edit_amount", 10),
        ("drop_line", 10),
        ("swap_lines", 10),
        ("cut_short", None),
        ("not_json", 7),
    ],
)
def test_a_corrupted_export_is_refused_naming_the_line(
    source: Services, empty_url: str, tmp_path: Path, corruption: str, line: int | None
) -> None:
    lines = exported(source)
    if corruption == "edit_amount":
        index = next(i for i, text in enumerate(lines) if i >= 9 and "PointsAwarded" in text)
        line = index + 1
        lines[index] = lines[index].replace('\\"amount\\":', '\\"amount\\":9', 1)
    elif corruption == "drop_line":
        del lines[9]
    elif corruption == "swap_lines":
        lines[9], lines[10] = lines[10], lines[9]
    elif corruption == "cut_short":
        lines = lines[:-5]
        line = len(lines)
    else:
        lines[6] = lines[6][:40]
    with bootstrap(key_settings(empty_url, tmp_path / "audit.key")) as copy:
        with pytest.raises(ImportRefused) as refused:
            import_lines(copy.app, lines)
        assert refused.value.line == line, str(refused.value)
        assert (copy.app.recorder.max_notification_id() or 0) == 0  # nothing imported


def test_import_with_another_key_is_refused_at_the_first_event(
    source: Services, empty_url: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.key"
    other.write_text("cd" * 32)
    with bootstrap(key_settings(empty_url, other)) as copy:
        with pytest.raises(ImportRefused, match="key") as refused:
            import_lines(copy.app, exported(source), KeyFile(other))
        assert refused.value.line == 2


def test_a_sqlite_backup_restored_into_an_empty_file_verifies(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The store's own tool: SQLite's online backup (`.backup` in the sqlite3 shell), plus a
    copy of the key file."""
    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    with bootstrap(make_settings(url), clock=clock) as wired:
        populate(wired.app, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
        restored = tmp_path / "restored" / "live.sqlite3"
        restored.parent.mkdir()
        with sqlite3.connect(tmp_path / "live.sqlite3") as live, sqlite3.connect(restored) as copy:
            live.backup(copy)
    shutil.copy(tmp_path / "live.sqlite3.audit-key", restored.parent / "live.sqlite3.audit-key")
    with bootstrap(make_settings(f"sqlite:///{restored}"), read_only=True) as copy_services:
        assert AuditChain(copy_services.app).verify().ok
        assert copy_services.projections is not None
        assert copy_services.projections.reconcile().consistent


def test_a_postgres_dump_restored_into_an_empty_database_verifies(
    postgres_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """The store's own tools: pg_dump of the store's schema, restored with psql into a new,
    empty database (the key file travels separately)."""
    _postgres_or_skip()
    if shutil.which("pg_dump") is None or shutil.which("psql") is None:
        pytest.skip("pg_dump/psql not installed")
    key = tmp_path / "audit.key"
    with bootstrap(key_settings(postgres_url, key), clock=clock) as wired:
        populate(wired.app, clock)
        assert wired.projections is not None
        wired.projections.catch_up()
    parsed = make_url(postgres_url)
    schema = dict(parsed.query)["schema"]
    server = parsed.set(drivername="postgresql", query={}, database="postgres")
    database = f"restore_{uuid.uuid4().hex[:12]}"
    admin = server.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    try:
        source = parsed.set(drivername="postgresql", query={}).render_as_string(False)
        target = server.set(database=database).render_as_string(False)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--schema", schema, source],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", target],
            input=dump,
            check=True,
            capture_output=True,
        )
        restored_url = parsed.set(database=database).render_as_string(hide_password=False)
        with bootstrap(key_settings(restored_url, key), read_only=True) as copy:
            report = AuditChain(copy.app).verify()
            assert report.ok, report.problem
            assert report.checked > 40
            assert copy.projections is not None
            assert copy.projections.reconcile().consistent
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
