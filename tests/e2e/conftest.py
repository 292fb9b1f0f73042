"""Fixtures of the end-to-end tests (the CLI's and the bot's)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.application.clock import ManualClock

from tests.telegram_live import wire


@pytest.fixture
def bare_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and no `DIANABOT_*` setting from the caller's environment
    (except whether PostgreSQL is required), as a newcomer's shell would have."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DIANABOT_") and name != "DIANABOT_REQUIRE_POSTGRES":
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def wired(tmp_path: Path, clock: ManualClock) -> Iterator[Services]:
    """The services the bot's end-to-end tests run on: a SQLite store with the catalogue and the
    bundled story, projections started (`telegram_live.wire`)."""
    with wire(f"sqlite:///{tmp_path / 'events.sqlite3'}", clock) as services:
        yield services
