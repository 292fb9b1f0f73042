"""How the bus turns store failures into typed results: one retry for a dropped connection,
a bounded number for version conflicts, nothing recorded twice."""

from __future__ import annotations

from typing import Any

import pytest
from dianabot.application import bus as bus_module
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from eventsourcing.persistence import IntegrityError, OperationalError


def failing_writer(app: DianaApplication, error: Exception) -> list[int]:
    attempts: list[int] = []

    def run(attempt: Any) -> Any:
        attempts.append(1)
        attempt()  # the decision itself runs, as it would on the writer thread
        raise error

    app._writer.run = run  # type: ignore[method-assign]
    return attempts


def test_a_connection_that_keeps_failing_is_retried_once_then_unavailable(
    memory_app: DianaApplication,
) -> None:
    assert memory_app.register_player(1, "Ana", Origin.telegram(1, 1)).ok
    attempts = failing_writer(memory_app, OperationalError("server closed the connection"))
    result = memory_app.react(1, "chan:1", "❤️", Origin.telegram(2, 1))
    assert result.outcome == "unavailable" and "server closed" in result.message
    assert len(attempts) == 2


def test_version_conflicts_are_retried_a_bounded_number_of_times(
    memory_app: DianaApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module.time, "sleep", lambda seconds: None)
    assert memory_app.register_player(1, "Ana", Origin.telegram(1, 1)).ok
    attempts = failing_writer(memory_app, IntegrityError("duplicate key"))
    result = memory_app.react(1, "chan:1", "❤️", Origin.telegram(2, 1))
    assert result.outcome == "conflict"
    # The command's attempts, then the bus's attempts to record its failure (`CommandFailed`),
    # which conflict too here; the caller gets its own result all the same.
    assert len(attempts) == 2 * bus_module.MAX_ATTEMPTS
