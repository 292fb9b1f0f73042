"""`dianabot workers` as a process (issue 12, items 4 and 6): killed with `kill -9` mid-way
and restarted, every badge a policy owes is awarded exactly once and every policy reaches the
head; SIGTERM stops it within seconds with nothing half-done; of two processes one holds the
workers and the other takes over when it dies; /healthz says 503 while PostgreSQL is down.

On a SQLite file and on a throwaway PostgreSQL server (`tests/faults.py`: these tests kill
and stop servers, never the shared one).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.story_file import parse_story
from dianabot.application.commands import (
    GrantPoints,
    MakeChoice,
    PublishStory,
    RegisterPlayer,
    StartStory,
)
from dianabot.application.policies import build
from dianabot.application.results import Origin
from dianabot.domain.ids import badge_award_id, player_id
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_ID, audit_key_env, make_settings
from tests.faults import ThrowawayPostgres, _free_port, throwaway_postgres
from tests.samples import DECISIONS_STORY

DIANABOT = Path(sys.executable).with_name("dianabot")
GRANTS = [
    (60, "primeros-besitos"),
    (60, "besitos-100"),
    (400, "besitos-500"),
    (500, "besitos-1000"),
]
"""Each grant takes the user's lifetime besitos past one more badge: one award per grant."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as running:
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite3'}"
    server: ThrowawayPostgres = request.getfixturevalue("server")
    if not server.running():
        server.start()
    return f"{server.url}?schema=w_{uuid.uuid4().hex[:12]}"


# ----- the process -----------------------------------------------------------------------------


class WorkersProcess:
    def __init__(self, url: str, directory: Path, name: str) -> None:
        self.port = _free_port()
        self.log = directory / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")}
        env.update(
            DIANABOT_DATABASE_URL=url,
            DIANABOT_WORKERS_PORT=str(self.port),
            DIANABOT_WORKERS_STANDBY_RETRY="0.3",
            DIANABOT_LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(audit_key_env(url))  # PostgreSQL: the key this test's own process uses
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [str(DIANABOT), "workers"],
                cwd=directory,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None

    def metrics(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    def wait_role(self, role: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        answer = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            answer = self.health()
            if answer is not None and answer[0] == 200 and answer[1]["role"] == role:
                return answer[1]
            time.sleep(0.05)
        raise AssertionError(f"not {role} within {timeout} s: {answer}\n{self.output()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[str, str], WorkersProcess]]:
    started: list[WorkersProcess] = []

    def start(url: str, name: str) -> WorkersProcess:
        started.append(WorkersProcess(url, tmp_path, name))
        return started[-1]

    yield start
    for process in started:
        process.close()


# ----- feeding and checking ---------------------------------------------------------------------


def feed(services: Services, users: range) -> None:
    """Register `users` and grant each four times: four badges owed to each."""
    bus = services.app.bus
    for user in users:
        assert bus.handle(RegisterPlayer(user, f"user {user}"), Origin.telegram(user, user)).ok
    for amount, _ in GRANTS:
        for user in users:
            grant = GrantPoints(user, admin_id=ADMIN_ID, amount=amount, reason="prueba")
            assert bus.handle(grant, Origin.admin(ADMIN_ID)).ok


def awards(services: Services, users: range) -> Counter[tuple[int, str]]:
    """BadgeAwarded events in the log, by (user, slug); award streams of anyone else fail."""
    streams = {badge_award_id(slug, user): (user, slug) for user in users for _, slug in GRANTS}
    log = event_log(services.app)
    found: Counter[tuple[int, str]] = Counter()
    for page in log.pages(0, log.head(), 10_000):
        for row in page:
            if row.topic.endswith(":BadgeAwarded") or row.topic.endswith(".BadgeAwarded"):
                found[streams[UUID(str(row.originator_id))]] += 1
    return found


def positions(services: Services) -> dict[str, int]:
    app = services.app
    return {p.name: app.subscriber_position(p.tracking_name) for p in build(app)}


def caught_up(services: Services, timeout: float = 60.0) -> None:
    """Until every policy is at the head (which their own commands move) for a moment."""
    log = event_log(services.app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head = log.head()
        if all(p == head for p in positions(services).values()):
            time.sleep(0.5)
            if log.head() == head and all(p == head for p in positions(services).values()):
                return
        time.sleep(0.05)
    raise AssertionError(f"policies not at the head {log.head()}: {positions(services)}")


def client(url: str) -> Services:
    return bootstrap(make_settings(url), projections=False, policies=False)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.005)
    raise AssertionError(what)


# ----- the tests --------------------------------------------------------------------------------


def test_kill_9_mid_way_then_restart_awards_every_badge_exactly_once(
    store_url: str, processes: Callable[[str, str], WorkersProcess]
) -> None:
    first_wave, second_wave = range(10_001, 10_301), range(20_001, 20_051)
    expected = Counter({(u, slug): 1 for u in [*first_wave, *second_wave] for _, slug in GRANTS})
    with client(store_url) as services:
        feed(services, first_wave)  # a backlog of 1,200 awards owed
        owed = len(first_wave) * len(GRANTS)
        worker = processes(store_url, "first")
        policy = build(services.app)[0].tracking_name
        start = event_log(services.app).head()

        def some_awards() -> bool:
            return services.app.subscriber_position(policy) > start // 10

        wait_until(some_awards, 60, f"no progress:\n{worker.output()}")
        worker.kill()  # kill -9, mid-way
        at_kill = sum(awards(services, first_wave).values())
        assert 0 < at_kill < owed, f"{at_kill} of {owed} awards at the kill: not mid-way"

        feed(services, second_wave)  # more work while no worker runs
        restarted = processes(store_url, "restarted")
        restarted.wait_role("leader")
        caught_up(services)
        assert awards(services, range(10_001, 20_051)) == expected
        head = event_log(services.app).head()
        assert set(positions(services).values()) == {head}

        def projections_caught_up() -> bool:
            lag = restarted.metrics()["dianabot_projection_lag"].samples
            return bool(lag) and all(s.value == 0 for s in lag)

        wait_until(projections_caught_up, 30, "projections behind")
        assert restarted.health() is not None
        restarted.process.send_signal(signal.SIGTERM)
        assert restarted.process.wait(10) == 0


def test_sigterm_stops_within_seconds_with_nothing_half_done(
    store_url: str, processes: Callable[[str, str], WorkersProcess]
) -> None:
    users = range(30_001, 30_301)
    with client(store_url) as services:
        feed(services, users)
        log = event_log(services.app)
        grants = {
            (UUID(str(row.originator_id)), row.originator_version): row.id
            for page in log.pages(0, log.head(), 10_000)
            for row in page
            if row.topic.endswith("PointsAdjusted")
        }
        worker = processes(store_url, "worker")
        policy = build(services.app)[0].tracking_name
        wait_until(
            lambda: services.app.subscriber_position(policy) > log.head() // 10,
            60,
            f"no progress:\n{worker.output()}",
        )
        asked = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(10) == 0, worker.output()
        took = time.monotonic() - asked
        assert took < 5, f"stopped {took:.1f} s after SIGTERM\n{worker.output()}"
        assert "workers: stopped" in worker.output()

        # Nothing half-done: the awards are exactly those of the grants up to the position.
        reached = services.app.subscriber_position(policy)
        evidence = set()
        for user in users:
            for _, slug in GRANTS:
                award = services.app.get_award(slug, user)
                if award is not None:
                    stream, version = award.evidence[0].split(":")[1:]
                    evidence.add(grants[(UUID(stream), int(version))])
        assert evidence == {p for p in grants.values() if p <= reached}
        assert 0 < len(evidence) < len(grants)

        # And a restart finishes the job, once each.
        restarted = processes(store_url, "restarted")
        restarted.wait_role("leader")
        caught_up(services)
        assert awards(services, users) == Counter(
            {(u, slug): 1 for u in users for _, slug in GRANTS}
        )


def test_one_process_holds_the_workers_the_other_takes_over_after_kill_9(
    store_url: str, processes: Callable[[str, str], WorkersProcess]
) -> None:
    users = range(40_001, 40_021)
    first = processes(store_url, "first")
    first.wait_role("leader")
    second = processes(store_url, "second")
    body = second.wait_role("standby")
    assert body["holder"] and body["threads"] == {"workers": True}
    assert "standing by" in second.output()
    assert first.health() is not None and first.health()[1]["role"] == "leader"
    first_leader = first.metrics()["dianabot_workers_leader"].samples[0].value
    assert first_leader == 1.0
    assert second.metrics()["dianabot_workers_leader"].samples[0].value == 0.0

    first.kill()
    took_over = time.monotonic()
    second.wait_role("leader", timeout=10)
    assert time.monotonic() - took_over < 5
    with client(store_url) as services:
        feed(services, users)
        caught_up(services)
        assert awards(services, users) == Counter(
            {(u, slug): 1 for u in users for _, slug in GRANTS}
        )


@pytest.mark.postgres
def test_healthz_is_503_while_postgresql_is_down_and_200_once_it_is_back(
    server: ThrowawayPostgres, processes: Callable[[str, str], WorkersProcess]
) -> None:
    if not server.running():
        server.start()
    url = f"{server.url}?schema=w_{uuid.uuid4().hex[:12]}"
    worker = processes(url, "worker")
    worker.wait_role("leader")
    server.stop()
    try:
        deadline = time.monotonic() + 10
        answer = worker.health()
        while time.monotonic() < deadline and (answer is None or answer[0] != 503):
            time.sleep(0.1)
            answer = worker.health()
        assert answer is not None and answer[0] == 503, answer
        assert answer[1]["status"] == "failing" and not answer[1]["store"]["ok"]
    finally:
        server.start()
    worker.wait_role("leader", timeout=30)  # took the lock again once the server was back
    users = range(50_001, 50_011)
    with client(url) as services:
        feed(services, users)
        caught_up(services)
        assert awards(services, users) == Counter(
            {(u, slug): 1 for u in users for _, slug in GRANTS}
        )


def test_a_port_in_use_is_one_line_naming_the_setting_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIANABOT_")}
        env["DIANABOT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'events.sqlite3'}"
        done = subprocess.run(
            [str(DIANABOT), "workers", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert "DIANABOT_WORKERS_PORT" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "events.sqlite3.workers.lock").exists()  # never took the workers


def test_kill_9_mid_way_then_restart_rewards_each_chapter_once(
    store_url: str, processes: Callable[[str, str], WorkersProcess]
) -> None:
    """The story-decision policy's effect is not idempotent by nature (+5 besitos): every user
    walks both chapters four times, so only the first decision of each chapter may pay, once,
    whatever the kill and the restart replay."""
    users = range(30_001, 30_121)
    command = PublishStory(parse_story(DECISIONS_STORY, "decisiones.yaml"))
    with client(store_url) as services:
        bus = services.app.bus
        assert bus.handle(command, Origin.admin(ADMIN_ID)).ok
        for user in users:
            assert bus.handle(RegisterPlayer(user, f"u{user}"), Origin.telegram(user, user)).ok
            assert bus.handle(StartStory(user, "decisiones"), Origin.telegram(user, user)).ok
        update = 1_000_000
        for _ in range(4):
            for choice in ("a_b", "b_c", "c_a"):
                for user in users:
                    update += 1
                    walk = MakeChoice(user, choice, "decisiones")
                    assert bus.handle(walk, Origin.telegram(update, user)).ok
        worker = processes(store_url, "first")
        policy = next(p for p in build(services.app) if p.name == "story-decisions")
        start = event_log(services.app).head()

        def some_rewards() -> bool:
            return services.app.subscriber_position(policy.tracking_name) > start // 3

        wait_until(some_rewards, 60, f"no progress:\n{worker.output()}")
        worker.kill()
        restarted = processes(store_url, "restarted")
        restarted.wait_role("leader")
        caught_up(services)
        log = event_log(services.app)
        owners = {player_id(user): user for user in users}
        bonuses: Counter[tuple[int, str]] = Counter()
        first_decisions: Counter[int] = Counter()
        for page in log.pages(0, log.head(), 10_000):
            for row in page:
                name = log.name_of(row.topic)
                if name == "PointsAwarded":
                    event = log.decode(row)
                    if event.source == "story_decision":
                        bonuses[(owners[event.originator_id], event.reference)] += 1
                elif name == "BadgeAwarded":
                    event = log.decode(row)
                    if event.badge_slug == "primera-decision":
                        first_decisions[event.telegram_id] += 1
        assert len(bonuses) == 2 * len(users) and set(bonuses.values()) == {1}
        assert first_decisions == Counter({user: 1 for user in users})
        restarted.process.send_signal(signal.SIGTERM)
        assert restarted.process.wait(10) == 0
