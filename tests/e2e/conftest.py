"""Fixtures of the CLI's end-to-end tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def bare_workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory and no `DIANABOT_*` setting from the caller's environment
    (except whether PostgreSQL is required), as a newcomer's shell would have."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("DIANABOT_") and name != "DIANABOT_REQUIRE_POSTGRES":
            monkeypatch.delenv(name)
    return tmp_path
