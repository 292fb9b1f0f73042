"""The dispatcher machine (`tests/kit/dispatcher_machine.py`): the real bot fed Telegram
updates while the clock jumps and its processes restart, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dianabot.domain.base import DianaAggregate
from hypothesis import HealthCheck, settings

from tests.conftest import _postgres_or_skip
from tests.kit import strategies as kst
from tests.kit.dispatcher_machine import DispatcherMachine
from tests.property.test_kit_machine import _drop_schema, _postgres_url, _sqlite_url

BUDGET = settings(
    max_examples=10,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


class SqliteDispatcher(DispatcherMachine):
    make_url = staticmethod(_sqlite_url)


class PostgresDispatcher(DispatcherMachine):
    make_url = staticmethod(_postgres_url)
    cleanup = staticmethod(_drop_schema)


def test_the_bot_keeps_the_invariants_on_sqlite() -> None:
    SqliteDispatcher.TestCase.settings = BUDGET
    SqliteDispatcher.TestCase().runTest()


@pytest.mark.postgres
def test_the_bot_keeps_the_invariants_on_postgres() -> None:
    _postgres_or_skip()
    PostgresDispatcher.TestCase.settings = settings(BUDGET, max_examples=5)
    PostgresDispatcher.TestCase().runTest()


def test_the_machine_bites_when_a_redelivered_update_is_applied_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the aggregates' duplicate check off, a /checkin delivered again a day later checks
    in again: the machine's re-delivery step says so."""
    machine = SqliteDispatcher()
    try:
        machine.updates([{"message": kst.message_in(1, 1, "/checkin")}])
        checkin = machine.delivered[-1]
        machine.deliver_again(checkin)  # the real bot: nothing again
        monkeypatch.setattr(DianaAggregate, "_refuse_duplicate", lambda *args: None)
        machine.advance_clock(timedelta(days=1))
        with pytest.raises(AssertionError, match="had effects again"):
            machine.deliver_again(checkin)
    finally:
        machine.close()
