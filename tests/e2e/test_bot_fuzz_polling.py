"""The bot fuzz over the real transport: raw updates injected into the local Bot API, fetched by
`UpdatePoller` with `getUpdates` over HTTP, parsed and handled; the bot keeps answering (a
sentinel's /help after them), logs no traceback, and the invariants hold."""

from __future__ import annotations

from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.kit import invariants as inv
from tests.kit import strategies as kst
from tests.kit.bot_driver import ErrorLog
from tests.telegram_live import Live, run


@pytest.mark.filterwarnings("ignore:Detected unknown update type")
def test_the_polling_bot_survives_any_getupdates_answer(wired: Services) -> None:
    @settings(
        max_examples=15,
        phases=[Phase.reuse, Phase.generate],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.lists(kst.raw_updates().filter(lambda raw: isinstance(raw, dict)), max_size=5))
    def feed(raws: list[dict[str, Any]]) -> None:
        async def scenario(live: Live) -> None:
            for raw in raws:  # numbered by the server, as Telegram numbers them
                try:
                    live.api.inject_update({k: v for k, v in raw.items() if k != "update_id"})
                except ValueError as error:  # beyond what the Bot API sends (64-bit integers)
                    assert "Bot API could send" in str(error)
            await live.settle()  # answered after every one of them

        with ErrorLog() as errors:
            run(wired, scenario)
        assert errors.unexpected() == [], (raws, errors.unexpected())
        assert wired.projections is not None
        inv.check_all(wired, inv.CHEAP)

    feed()
    inv.check_all(wired)
