"""`dianabot admin refund USER CHARGE_ID` end to end against the local Bot API (issue 14):
Telegram's refundStarPayment through the configured token and server, then the refund recorded
as the bot's /refund records it; every refusal one line and its exit code."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.main import app as cli
from dianabot.adapters.telegram.bot import make_bot
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.adapters.telegram.routers.vip import payload_for
from dianabot.application.clock import ManualClock
from dianabot.application.commands import RecordStarsPayment, RegisterPlayer
from dianabot.application.results import Origin
from dianabot.domain.ids import stars_payment_id
from typer.testing import CliRunner

from tests.conftest import ADMIN_ID, make_settings
from tests.policies import logged
from tests.telegram_live import TOKEN

runner = CliRunner()
ANA, LUIS, NOBODY = 1201, 1202, 1299
PRICE = 250


def pay(wired: Any, user: int, charge: str, update: int) -> None:
    command = RecordStarsPayment(
        user, charge_id=charge, amount=PRICE, currency="XTR", payload=payload_for(user, PRICE),
        days=30,
    )  # fmt: skip
    assert wired.app.bus.handle(command, Origin.telegram(update, user)).ok


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, LocalBotAPI]]:
    """Ana paid three charges (known to Telegram: stxA1, stxA2; not: stxGHOST), Luis is
    registered; the CLI's settings point at the store and the local Bot API."""
    url = f"sqlite:///{tmp_path / 'events.sqlite3'}"
    monkeypatch.chdir(tmp_path)
    with LocalBotAPI(TOKEN).running_in_thread() as api:
        clock = ManualClock(datetime.now(UTC) - timedelta(hours=1))
        with bootstrap(make_settings(url), clock=clock) as wired:
            bus = wired.app.bus
            for user in (ANA, LUIS):
                assert bus.handle(RegisterPlayer(user, "x"), Origin.telegram(user, user)).ok
            for n, charge in enumerate(("stxA1", "stxA2", "stxGHOST")):
                if charge != "stxGHOST":
                    api.inject_successful_payment(
                        ANA, payload_for(ANA, PRICE), PRICE, "XTR", charge
                    )
                pay(wired, ANA, charge, 100 + n)
        api.strict_chats = False
        for name, value in {
            "DATABASE_URL": url,
            "ADMIN_IDS": str(ADMIN_ID),
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_SERVER": api.url,
            "LOG_LEVEL": "WARNING",
        }.items():
            monkeypatch.setenv(f"DIANABOT_{name}", value)
        yield url, api


def refund(*args: str) -> Any:
    return runner.invoke(cli, ["admin", "refund", *args, "--json"])


def refunds_recorded(url: str) -> list[Any]:
    with bootstrap(make_settings(url), read_only=True) as wired:
        return logged(wired, "StarsPaymentRefunded")


def test_a_refund_goes_through_telegram_and_is_recorded_once(
    store: tuple[str, LocalBotAPI],
) -> None:
    url, api = store
    done = refund(str(ANA), "stxA1", "--reason", "pedido por soporte")
    assert done.exit_code == exits.OK, done.output
    body = json.loads(done.stdout)
    assert body["outcome"] == "ok" and body["details"]["amount"] == PRICE
    names = [e["name"] for e in body["events"]]
    assert names == ["StarsPaymentRefunded", "VipShortened"]
    assert body["details"]["vip_until"] is not None  # two more payments: still VIP
    assert api.refunded_charges == {"stxA1"}
    (recorded,) = refunds_recorded(url)
    assert recorded.reason == "pedido por soporte" and recorded.admin_id == 0
    assert recorded.actor == "admin:0"
    assert any("devolví tus Stars" in text for text in api.sent_texts(ANA))

    again = refund(str(ANA), "stxA1")
    assert again.exit_code == exits.REFUSED
    assert json.loads(again.stdout)["error"] == "already_refunded"
    assert len(api.calls("refundStarPayment")) == 1  # Telegram not asked again
    assert len(refunds_recorded(url)) == 1


def test_refusals_are_one_line_with_their_exit_code(store: tuple[str, LocalBotAPI]) -> None:
    url, api = store
    cases = [
        ((str(NOBODY), "stxA1"), exits.REFUSED, "unknown_user"),
        ((str(ANA), "stxNOPE"), exits.REFUSED, "unknown_charge"),
        ((str(LUIS), "stxA1"), exits.REFUSED, "unknown_charge"),  # someone else's payment
        ((str(ANA), "stxGHOST"), exits.REFUSED, "telegram_refused"),  # Telegram knows no such
        ((str(ANA), "stxA1", "--admin", "555"), exits.REFUSED, "not_admin"),  # asked nobody
    ]
    for args, code, error in cases:
        result = refund(*args)
        assert result.exit_code == code, (args, result.output)
        assert json.loads(result.stdout)["error"] == error, result.stdout
    assert "CHARGE_NOT_FOUND" in refund(str(ANA), "stxGHOST").stdout
    plain = runner.invoke(cli, ["admin", "refund", str(ANA), "stxNOPE"])
    assert plain.exit_code == exits.REFUSED and "Traceback" not in plain.output
    assert "no payment stxNOPE of user" in plain.output
    assert refunds_recorded(url) == [] and api.refunded_charges == set()


def test_no_token_or_no_bot_api_server(
    store: tuple[str, LocalBotAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, api = store
    monkeypatch.delenv("DIANABOT_BOT_TOKEN")
    missing = refund(str(ANA), "stxA1")
    assert missing.exit_code == exits.USAGE, missing.output
    assert "DIANABOT_BOT_TOKEN is not set" in missing.output
    monkeypatch.setenv("DIANABOT_BOT_TOKEN", TOKEN)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DIANABOT_TELEGRAM_API_SERVER", f"http://127.0.0.1:{port}")
    down = refund(str(ANA), "stxA1")
    assert down.exit_code == exits.UNAVAILABLE, down.output
    assert json.loads(down.stdout)["error"] == "telegram_unreachable"
    assert refunds_recorded(url) == [] and api.calls("refundStarPayment") == []


def test_a_charge_telegram_refunded_already_is_recorded(store: tuple[str, LocalBotAPI]) -> None:
    url, api = store

    async def refund_in_telegram_only() -> None:  # say, by the bot, whose record then failed
        bot = make_bot(TOKEN, api.url)
        try:
            await bot.refund_star_payment(user_id=ANA, telegram_payment_charge_id="stxA2")
        finally:
            await bot.session.close()

    asyncio.run(refund_in_telegram_only())
    done = refund(str(ANA), "stxA2")
    assert done.exit_code == exits.OK, done.output
    recorded = refunds_recorded(url)
    assert [r.originator_id for r in recorded] == [stars_payment_id("stxA2")]
