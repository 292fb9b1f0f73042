"""The workers in one process (issue 12, item 4): /metrics as Prometheus text with the
promised series, /healthz, and one holder of the workers among several."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.workers import LEADER, STANDBY, STOPPED, Workers
from dianabot.application.clock import ManualClock
from dianabot.application.commands import Command, GrantPoints, RegisterPlayer
from dianabot.application.policies import build
from dianabot.application.policies.base import Policy
from dianabot.application.results import Origin
from dianabot.projections.registry import PROJECTORS
from dianabot.projections.subscriptions import Policies
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_ID, make_settings

ANA, BEA = 901, 902


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def health(workers: Workers) -> tuple[int, dict[str, Any]]:
    status, body = get(f"http://127.0.0.1:{workers.port}/healthz")
    return status, json.loads(body)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def settings_for(url: str, **overrides: Any) -> Any:
    values: dict[str, Any] = {"workers_port": 0, "workers_standby_retry": 0.2}
    values.update(overrides)
    return make_settings(url, **values)


class ExplodingOnBea(Policy):
    name = "exploding"
    handles = frozenset({"PointsAdjusted"})

    def react(self, event: Any) -> Command | None:
        if self.owner(event) == BEA:
            raise RuntimeError("boom")
        return None


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(settings_for(database_url), clock=clock) as wired:
        app = wired.app
        # The real policies and one that fails on BEA's grants, parked after one attempt.
        assert wired.policies is not None
        wired.policies.stop()
        wired.policies = Policies(
            app, event_log(app), [*build(app), ExplodingOnBea(app)], max_attempts=1
        )
        yield wired


def test_metrics_are_prometheus_text_with_every_promised_series(services: Services) -> None:
    app = services.app
    with Workers(services) as workers:
        assert workers.role == LEADER and workers.port
        for user in (ANA, BEA):
            assert app.bus.handle(RegisterPlayer(user, "x"), Origin.telegram(user, user)).ok
            grant = GrantPoints(user, admin_id=ADMIN_ID, amount=150, reason="prueba")
            assert app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
        refused = GrantPoints(ANA, admin_id=ADMIN_ID, amount=-10_000, reason="prueba")
        refusal = app.bus.handle(refused, Origin.admin(ADMIN_ID)).outcome
        assert refusal != "ok"
        assert services.policies is not None and services.projections is not None
        head = event_log(app).head()
        assert eventually(lambda: all(s.lag == 0 for s in services.policies.status()))
        assert eventually(lambda: all(s.lag == 0 for s in services.projections.status()))
        head = event_log(app).head()

        status, text = get(f"http://127.0.0.1:{workers.port}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text.decode())}

    def samples(name: str, **labels: str) -> list[float]:
        return [
            s.value
            for s in families[name].samples
            if s.name == f"{name}_total" or s.name == name
            if all(s.labels.get(k) == v for k, v in labels.items())
        ]

    assert samples("dianabot_commands", command="RegisterPlayer", outcome="ok") == [2.0]
    assert samples("dianabot_commands", command="GrantPoints", outcome="ok") == [2.0]
    assert samples("dianabot_commands", command="GrantPoints", outcome=refusal) == [1.0]
    # The policies' own commands are counted too (badges awarded to both).
    assert samples("dianabot_commands", command="AwardEarnedBadges", outcome="ok") == [2.0]
    assert samples("dianabot_events_appended")[0] >= 8
    assert samples("dianabot_event_log_head") == [float(head)]
    for projection in PROJECTORS:
        assert samples("dianabot_projection_position", projection=projection) == [float(head)]
        assert samples("dianabot_projection_lag", projection=projection) == [0.0]
        assert samples("dianabot_subscriber_errors", kind="projection", subscriber=projection) == [
            0.0
        ]
    for policy in ("badges-by-criteria", "exploding"):
        assert samples("dianabot_policy_position", policy=policy) == [float(head)]
        assert samples("dianabot_policy_lag", policy=policy) == [0.0]
    assert samples("dianabot_policy_parked_events", policy="exploding") == [1.0]
    assert samples("dianabot_policy_parked_events", policy="badges-by-criteria") == [0.0]
    assert samples("dianabot_subscriber_errors", kind="policy", subscriber="exploding") == [1.0]
    assert samples("dianabot_job_runs", job="vip-expiry", result="ok")[0] >= 1
    assert samples("dianabot_job_runs", job="vip-expiry", result="error") == [0.0]
    assert samples("dianabot_workers_leader") == [1.0]
    assert samples("dianabot_store_up") == [1.0]
    assert families["dianabot_commands"].type == "counter"
    assert families["dianabot_policy_lag"].type == "gauge"


def test_healthz_answers_200_then_503_once_the_sqlite_file_is_gone(
    tmp_path: Path, clock: ManualClock
) -> None:
    database = tmp_path / "events.sqlite3"
    with (
        bootstrap(settings_for(f"sqlite:///{database}"), clock=clock) as services,
        Workers(services) as workers,
    ):
        status, body = health(workers)
        assert status == 200, body
        assert body["status"] == "ok" and body["role"] == LEADER and body["store"]["ok"]
        assert body["threads"] == {
            "workers": True,
            "projections": True,
            "policies": True,
            "jobs": True,
        }
        database.unlink()
        status, body = health(workers)
        assert status == 503
        assert body["status"] == "failing" and not body["store"]["ok"]
        assert "missing" in body["store"]["error"]
    assert workers.role == STOPPED


def test_healthz_is_503_when_a_runner_thread_is_dead(services: Services) -> None:
    with Workers(services) as workers:
        assert health(workers)[0] == 200
        assert services.policies is not None
        services.policies.live.stop()
        status, body = health(workers)
        assert status == 503 and body["threads"]["policies"] is False


def test_one_process_holds_the_workers_and_another_takes_over_when_it_stops(
    shared_database_url: str, clock: ManualClock
) -> None:
    settings = settings_for(shared_database_url)
    with (
        bootstrap(settings, clock=clock) as first_services,
        bootstrap(settings, clock=clock) as second_services,
    ):
        first = Workers(first_services)
        second = Workers(second_services)
        first.start()
        second.start()
        try:
            assert first.role == LEADER and second.role == STANDBY
            status, body = health(second)
            assert status == 200 and body["role"] == STANDBY and body["holder"]
            assert body["threads"] == {"workers": True}  # no runner while standing by
            assert second_services.policies is not None
            assert not second_services.policies.live.running
            time.sleep(0.5)  # several retries: still standing by
            assert second.role == STANDBY
            assert first.stop()
            assert eventually(lambda: second.role == LEADER, timeout=5)
            assert second_services.policies.live.running
            assert health(second)[1]["threads"]["policies"] is True
            # And the work goes on there.
            app = second_services.app
            assert app.bus.handle(RegisterPlayer(ANA, "x"), Origin.telegram(1, ANA)).ok
            grant = GrantPoints(ANA, admin_id=ADMIN_ID, amount=150, reason="prueba")
            assert app.bus.handle(grant, Origin.admin(ADMIN_ID)).ok
            assert eventually(lambda: app.get_award("besitos-100", ANA) is not None)
        finally:
            first.stop()
            second.stop()
