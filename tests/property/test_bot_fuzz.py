"""Fuzzing the bot at the JSON level: random and malformed updates (any JSON under known and
unknown kinds, one field mangled, forged and huge callback data, odd ids, a sender missing,
edited messages, other chats' posts, not an object at all) go the way the polling loop takes
them (`parse_update`, then `InTurn` and the real dispatcher), and as request bodies (any bytes
too) to the webhook server. Nothing escapes, nothing is logged as a traceback, the webhook
answers 200 or 400 (never 500), and every invariant still holds afterwards."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dianabot.adapters.bootstrap import Services
from dianabot.adapters.telegram.limits import UserThrottle
from dianabot.adapters.telegram.webhook import SECRET_HEADER, WebhookServer
from dianabot.application.clock import ManualClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.kit.bot_driver import BotDriver, ErrorLog, run, wired_bot_services

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def fuzzed() -> Iterator[tuple[Services, BotDriver, asyncio.AbstractEventLoop]]:
    url = f"sqlite:///{Path(tempfile.mkdtemp()) / 'events.sqlite3'}"
    services = wired_bot_services(url, ManualClock())
    loop = asyncio.new_event_loop()
    try:
        yield services, BotDriver(services, throttle=UserThrottle()), loop
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


SECRET = "fuzz-secret"
bodies = st.one_of(
    kst.raw_updates().map(lambda raw: json.dumps(raw).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
)


def test_the_webhook_answers_any_body_with_200_or_400_and_no_traceback(
    fuzzed: tuple[Services, BotDriver, asyncio.AbstractEventLoop],
) -> None:
    services, driver, loop = fuzzed
    server = WebhookServer(
        driver.dispatcher, driver.bot, url="https://bot.example/hook", secret=SECRET
    )

    async def post(sent: list[bytes]) -> list[int]:
        async with TestClient(TestServer(server.make_app())) as client:
            statuses = []
            for body in sent:
                response = await client.post("/hook", data=body, headers={SECRET_HEADER: SECRET})
                statuses.append(response.status)
            return statuses

    @settings(FUZZ, max_examples=60)
    @given(st.lists(bodies, min_size=1, max_size=5))
    def feed(sent: list[bytes]) -> None:
        with ErrorLog() as errors:
            statuses = loop.run_until_complete(asyncio.wait_for(post(sent), 60))
            assert set(statuses) <= {200, 400}, (sent, statuses)
            assert errors.unexpected() == [], (sent, errors.unexpected())
        inv.check_all(services, inv.CHEAP)

    feed()
    inv.check_all(services)
