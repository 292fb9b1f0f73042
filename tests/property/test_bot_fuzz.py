"""Fuzzing the bot at the JSON level: random and malformed updates (any JSON under known and
unknown kinds, one field mangled, forged and huge callback data, odd ids, a sender missing,
edited messages, other chats' posts, not an object at all) go the way the polling loop and the
webhook take them (`parse_update`, then `InTurn` and the real dispatcher). Nothing escapes,
nothing is logged as a traceback, and every invariant still holds afterwards."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.application.clock import ManualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.kit.bot_driver import BotDriver, ErrorLog, run, wired_bot_services

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def fuzzed() -> Iterator[tuple[Services, BotDriver, asyncio.AbstractEventLoop]]:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'events.sqlite3'}"
    services = wired_bot_services(url, ManualClock())
    loop = asyncio.new_event_loop()
    try:
        yield services, BotDriver(services), loop
    finally:
        loop.close()
        services.close()


def test_no_raw_update_escapes_or_logs_a_traceback_and_the_invariants_hold(
    fuzzed: tuple[Services, BotDriver, asyncio.AbstractEventLoop],
) -> None:
    services, driver, loop = fuzzed

    @FUZZ
    @given(st.lists(kst.raw_updates(), min_size=1, max_size=6))
    def feed(raws: list[Any]) -> None:
        with ErrorLog() as errors:
            for raw in raws:
                delivery = run(loop, driver, raw)  # raises if anything escaped
                assert delivery.count("answerCallbackQuery") <= 1, delivery
            assert errors.unexpected() == [], (raws, errors.unexpected())
        inv.check_all(services, inv.CHEAP)

    feed()
    inv.check_all(services)
