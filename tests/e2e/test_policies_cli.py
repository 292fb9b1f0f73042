"""`dianabot policies status|retry` end to end (SQLite file and PostgreSQL), for the workers'
policies and the bot's vip-channel (retried through the local Bot API).

The history has a grant that earns badges, and an event the badges policy parked (as the
runner parks one after its last attempt): `status` shows it and exits 1; `retry` applies the
policy's effect once with the resolution; a second `retry` finds nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.cli import exits
from dianabot.adapters.cli.main import app as cli
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.telegram.local_api import LocalBotAPI
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, ParkEvent, RegisterPlayer
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from eventsourcing.persistence import Tracking
from typer.testing import CliRunner

from tests.conftest import ADMIN_ID, make_settings
from tests.telegram_live import TOKEN, VIP_CHANNEL

runner = CliRunner()
ANA = 501
POLICY = "badges-by-criteria"
VIP_CHANNEL_POLICY = "vip-channel"


@pytest.fixture
def database(
    shared_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, int]]:
    """A store where the badges policy parked the grant that earns Ana two badges (and
    handled everything else); returns the URL and the parked position."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIANABOT_DATABASE_URL", shared_database_url)
    monkeypatch.setenv("DIANABOT_ADMIN_IDS", str(ADMIN_ID))
    monkeypatch.setenv("DIANABOT_LOG_LEVEL", "WARNING")
    clock = ManualClock(datetime.now(UTC) - timedelta(days=1))
    with bootstrap(make_settings(shared_database_url), clock=clock) as wired:
        bus = wired.app.bus
        assert bus.handle(RegisterPlayer(ANA, "Ana"), Origin.telegram(1, ANA)).ok
        grant = GrantPoints(ANA, admin_id=ADMIN_ID, amount=150, reason="prueba")
        granted = bus.handle(grant, Origin.admin(ADMIN_ID))
        assert granted.ok
        position = next(e.position for e in granted.events if e.name == "PointsAdjusted")
        assert position is not None
        park = ParkEvent(
            POLICY, position, str(player_id(ANA)), 2, "PointsAdjusted", "boom: badges down", 5
        )
        parked = bus.handle(
            park, Origin.system("policies", "park"), tracking=Tracking(f"policy:{POLICY}", position)
        )
        assert parked.ok
        assert wired.policies is not None
        wired.policies.catch_up()  # everything else handled: only the parked grant is missing
        assert wired.app.get_award("besitos-100", ANA) is None
        yield shared_database_url, position


def invoke(*args: str) -> Any:
    return runner.invoke(cli, list(args))


def awards(url: str) -> tuple[set[str], int]:
    """Ana's badges, and how many BadgeAwarded events the log holds."""
    with bootstrap(make_settings(url), read_only=True) as wired:
        app = wired.app
        slugs = ["primeros-besitos", "besitos-100", "besitos-500"]
        held = {s for s in slugs if (a := app.get_award(s, ANA)) is not None and a.held}
        log = event_log(app)
        count = sum(
            1
            for page in log.pages(0, log.head(), 10_000)
            for row in page
            if log.name_of(row.topic) == "BadgeAwarded"
        )
    return held, count


def test_status_then_retry_applies_the_effect_once(database: tuple[str, int]) -> None:
    url, position = database
    status = invoke("policies", "status", "--json")
    assert status.exit_code == exits.DIFFERENCES, status.output
    rows = {row["name"]: row for row in json.loads(status.stdout)}
    assert rows[POLICY]["parked"] == 1 and rows[POLICY]["lag"] == 0
    assert rows["error-recovery"]["parked"] == 0
    table = invoke("policies", "status")
    assert POLICY in table.stdout and "parked" in table.stdout

    dry = invoke("policies", "retry", "--dry-run", "--json")
    assert dry.exit_code == exits.OK, dry.output
    (planned,) = json.loads(dry.stdout)["retried"]
    assert planned["outcome"] == "would_retry" and planned["reaction"] == "AwardEarnedBadges"
    assert awards(url)[0] == set()
    unconfirmed = invoke("policies", "retry")
    assert unconfirmed.exit_code == exits.REFUSED, unconfirmed.output
    unknown = invoke("policies", "retry", "--policy", "nope", "--yes")
    assert unknown.exit_code == exits.USAGE and "unknown policy" in unknown.output

    done = invoke("policies", "retry", "--yes", "--json", "--policy", POLICY)
    assert done.exit_code == exits.OK, done.output
    (outcome,) = json.loads(done.stdout)["retried"]
    assert (outcome["position"], outcome["outcome"]) == (position, "resolved")
    assert outcome["detail"] == "applied: AwardEarnedBadges"
    held, count = awards(url)
    assert held == {"primeros-besitos", "besitos-100"}

    again = invoke("policies", "retry", "--yes", "--json")
    assert again.exit_code == exits.OK and json.loads(again.stdout)["retried"] == []
    assert awards(url) == (held, count)
    assert invoke("policies", "status").exit_code == exits.OK
    reconciled = invoke("reconcile", "--json")
    assert reconciled.exit_code == exits.OK, reconciled.output


@pytest.fixture
def vip_parked(
    shared_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, int]]:
    """A store where the bot's vip-channel policy parked Ana's VIP grant (Telegram was down):
    she is VIP and was never sent her invite link. The URL and the parked position."""
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "DATABASE_URL": shared_database_url,
        "ADMIN_IDS": str(ADMIN_ID),
        "LOG_LEVEL": "WARNING",
        "VIP_CHANNEL_ID": str(VIP_CHANNEL),
        "TELEGRAM_API_SERVER": "http://127.0.0.1:9",  # nobody: a dry run must not call it
    }.items():
        monkeypatch.setenv(f"DIANABOT_{name}", value)
    monkeypatch.delenv("DIANABOT_BOT_TOKEN", raising=False)
    settings = make_settings(shared_database_url, vip_channel_id=VIP_CHANNEL)
    with bootstrap(settings, clock=ManualClock(datetime.now(UTC) - timedelta(hours=1))) as wired:
        bus = wired.app.bus
        assert bus.handle(RegisterPlayer(ANA, "Ana"), Origin.telegram(1, ANA)).ok
        granted = wired.app.grant_vip(ANA, 30, "admin", "prueba", Origin.console())
        (event,) = [e for e in granted.events if e.name == "VipGranted"]
        assert event.position is not None
        park = ParkEvent(
            VIP_CHANNEL_POLICY, event.position, str(player_id(ANA)), event.version, "VipGranted",
            "TelegramNetworkError: down", 5,
        )  # fmt: skip
        tracking = Tracking(f"policy:{VIP_CHANNEL_POLICY}", event.position)
        assert bus.handle(park, Origin.system("policies", "park"), tracking=tracking).ok
        yield shared_database_url, event.position


def test_the_bots_vip_channel_policy_is_listed_and_its_parked_events_retried(
    vip_parked: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, position = vip_parked
    status = invoke("policies", "status", "--json")
    assert status.exit_code == exits.DIFFERENCES, status.output
    row = {r["name"]: r for r in json.loads(status.stdout)}[VIP_CHANNEL_POLICY]
    assert (row["runs_in"], row["position"], row["parked"]) == ("bot", position, 1)
    assert row["lag"] == row["head"] - position
    assert "vip-channel" in invoke("policies", "status").stdout

    # A dry run calls nobody (the API server configured is not there) and needs no token.
    dry = invoke("policies", "retry", "--dry-run", "--json", "--policy", VIP_CHANNEL_POLICY)
    assert dry.exit_code == exits.OK, dry.output
    (planned,) = json.loads(dry.stdout)["retried"]
    assert (planned["outcome"], planned["reaction"]) == ("would_retry", "RecordVipChannel")
    no_token = invoke("policies", "retry", "--yes", "--json")
    assert no_token.exit_code == exits.USAGE, no_token.output
    assert "DIANABOT_BOT_TOKEN" in no_token.stdout

    with LocalBotAPI(TOKEN).running_in_thread() as api:
        api.add_channel(VIP_CHANNEL, title="El Diván")
        api.strict_chats = False
        monkeypatch.setenv("DIANABOT_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("DIANABOT_TELEGRAM_API_SERVER", api.url)
        done = invoke("policies", "retry", "--yes", "--json", "--policy", VIP_CHANNEL_POLICY)
        assert done.exit_code == exits.OK, done.output
        (outcome,) = json.loads(done.stdout)["retried"]
        assert (outcome["position"], outcome["outcome"]) == (position, "resolved")
        assert outcome["detail"] == "applied: RecordVipChannel"
        (invite,) = api.calls("createChatInviteLink")
        assert invite.params["chat_id"] == VIP_CHANNEL and invite.params["name"] == f"vip:{ANA}"
        (welcome,) = api.sent_texts(ANA)
        assert invite.result["invite_link"] in welcome
        again = invoke("policies", "retry", "--yes", "--json")
        assert again.exit_code == exits.OK and json.loads(again.stdout)["retried"] == []
        assert len(api.calls("createChatInviteLink")) == 1 and len(api.sent_texts(ANA)) == 1
    assert invoke("policies", "status").exit_code == exits.OK
    with bootstrap(make_settings(url), read_only=True) as wired:
        player = wired.app.get_player(ANA)
        assert player is not None and player.vip_channel == "invited"
