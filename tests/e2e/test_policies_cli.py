"""`dianabot policies status|retry` end to end (SQLite file and PostgreSQL).

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
from dianabot.application.clock import ManualClock
from dianabot.application.commands import GrantPoints, ParkEvent, RegisterPlayer
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id
from eventsourcing.persistence import Tracking
from typer.testing import CliRunner

from tests.conftest import ADMIN_ID, make_settings

runner = CliRunner()
ANA = 501
POLICY = "badges-by-criteria"


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
