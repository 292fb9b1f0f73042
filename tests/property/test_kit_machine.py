"""The invariant kit's stateful machine on SQLite and PostgreSQL, and proof that it bites."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql

from tests.conftest import POSTGRES_URL, _postgres_or_skip
from tests.kit.machine import InvariantMachine


def machine_settings(share: int = 1) -> settings:
    """The active profile's budget (tests/conftest.py: `ci` 25 examples of at most 20 steps,
    `deep` 500 of 50), a `share` of its examples: read when the test runs, after pytest loaded
    the profile `--hypothesis-profile` names."""
    profile = settings()
    return settings(
        profile,
        max_examples=max(1, profile.max_examples // share),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _sqlite_url() -> str:
    return f"sqlite:///{Path(tempfile.mkdtemp()) / 'events.sqlite3'}"


class SqliteMachine(InvariantMachine):
    make_url = staticmethod(_sqlite_url)


def _postgres_url() -> str:
    schema = f"k_{uuid.uuid4().hex[:12]}"
    base_url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"


def _drop_schema(url: str) -> None:
    schema = url.rsplit("schema=", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


class PostgresMachine(InvariantMachine):
    make_url = staticmethod(_postgres_url)
    cleanup = staticmethod(_drop_schema)


def test_invariants_hold_on_sqlite() -> None:
    SqliteMachine.TestCase.settings = machine_settings()
    SqliteMachine.TestCase().runTest()


@pytest.mark.postgres
def test_invariants_hold_on_postgres() -> None:
    _postgres_or_skip()
    PostgresMachine.TestCase.settings = machine_settings(share=5)
    PostgresMachine.TestCase().runTest()
