"""Store fixtures: every integration test runs on POPO (memory), SQLite and PostgreSQL.

PostgreSQL tests use `postgresql://postgres@127.0.0.1:5432/test` unless DIANABOT_TEST_DATABASE_URL
says otherwise, each in its own schema, dropped afterwards. They skip when the server is missing,
except when DIANABOT_REQUIRE_POSTGRES=1 (CI), where a missing server is a failure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.settings import Settings
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from hypothesis import settings as hypothesis_settings
from psycopg import sql

POSTGRES_URL = os.environ.get(
    "DIANABOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
ADMIN_ID = 42

# Hypothesis profiles (docs/invariant-testing.md): `ci` bounds the property tests that take their
# example counts from the profile (the invariant kit's machines); `deep` runs them much longer:
# `pytest --hypothesis-profile=deep tests/property/test_kit_machine.py`.
hypothesis_settings.register_profile(
    "ci", max_examples=25, stateful_step_count=20, deadline=None, print_blob=True
)
hypothesis_settings.register_profile(
    "deep", max_examples=500, stateful_step_count=50, deadline=None, print_blob=True
)


def pytest_configure(config: pytest.Config) -> None:
    """`ci` unless `--hypothesis-profile` names another (hypothesis's own plugin reads the option
    before this file registers the profiles)."""
    chosen = config.getoption("--hypothesis-profile", None)
    hypothesis_settings.load_profile(chosen or os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def by_system(job: str = "test") -> Origin:
    """A fresh origin of the application's own jobs and policies (awards, payments)."""
    return Origin.system(job, uuid.uuid4().hex)


STORES = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SHARED_STORES = STORES[1:]
"""Stores that several application instances (processes) can share."""


def _postgres_or_skip() -> None:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.Error as error:
        if os.environ.get("DIANABOT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but unreachable at {POSTGRES_URL}: {error}")
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_URL}")


def audit_key_env(database_url: str) -> dict[str, str]:
    """The audit key setting a process of this test uses for `database_url` (as the
    environment of a `dianabot` process it starts): PostgreSQL's only, the one in the
    environment (`postgres_url`) or else `audit_key_for`; SQLite's key sits beside its file."""
    if not database_url.startswith("postgresql"):
        return {}
    named = os.environ.get("DIANABOT_AUDIT_KEY_FILE") or str(audit_key_for(database_url))
    return {"DIANABOT_AUDIT_KEY_FILE": named}


def audit_key_for(database_url: str) -> Path:
    """PostgreSQL has no default audit key file: a test store that is not `postgres_url`'s
    (which names one in the environment) gets one per URL, so every `make_settings` of one
    store, in this process or another, finds the same key."""
    directory = Path(tempfile.gettempdir()) / "dianabot-test-audit-keys"
    directory.mkdir(exist_ok=True)
    return directory / f"{hashlib.sha256(database_url.encode()).hexdigest()[:24]}.key"


@pytest.fixture
def postgres_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A PostgreSQL URL whose `schema` is private to this test (dropped afterwards), and its
    audit key file in DIANABOT_AUDIT_KEY_FILE (PostgreSQL has no default place for it): seen by
    `make_settings`, `dianabot` in-process and the processes a test starts with its environment."""
    _postgres_or_skip()
    key = tmp_path_factory.mktemp("audit-key") / "dianabot-audit.key"
    monkeypatch.setenv("DIANABOT_AUDIT_KEY_FILE", str(key))
    schema = f"t_{uuid.uuid4().hex[:16]}"
    separator = "&" if "?" in POSTGRES_URL else "?"
    base = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}{separator}schema={schema}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=SHARED_STORES)
def shared_database_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def shared_services(shared_database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        yield wired


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "admin_ids": frozenset({ADMIN_ID}),
        "group_commit": False,
    }
    key = audit_key_env(database_url).get("DIANABOT_AUDIT_KEY_FILE")
    if key is not None:
        values["audit_key_file"] = key
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock) as wired:
        yield wired


@pytest.fixture
def app(services: Services) -> DianaApplication:
    return services.app


@pytest.fixture
def memory_app(clock: ManualClock) -> Iterator[DianaApplication]:
    """A POPO-backed application for fast unit-level tests of the use cases."""
    with bootstrap(make_settings("memory://"), clock=clock) as wired:
        yield wired.app
