"""The jobs runner: each job when due, failures counted and retried at the next interval, a
stop that waits for the job in progress."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from dianabot.application.jobs import ExpireVips, JobFailed, Jobs


@dataclass
class Fake:
    name: str
    interval: float
    fail: bool = False
    calls: int = 0
    gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)

    def run(self) -> str:
        self.calls += 1
        self.started.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("store says no")
        return f"run {self.calls}"


def test_jobs_run_when_due_and_a_failure_is_counted_and_retried_at_its_interval() -> None:
    now = [100.0]
    good, bad = Fake("good", 10), Fake("bad", 30, fail=True)
    jobs = Jobs([good, bad], clock=lambda: now[0], wall_clock=lambda: 5_000.0)
    assert jobs.run_due() == 2  # both at once at the start
    assert jobs.run_due() == 0
    now[0] += 10
    assert jobs.run_due() == 1 and good.calls == 2 and bad.calls == 1
    now[0] += 20
    assert jobs.run_due() == 2
    status = {s.name: s for s in jobs.status()}
    assert status["good"].runs == 3 and status["good"].failures == 0
    assert status["good"].last_result == "run 3" and status["good"].last_success == 5_000.0
    assert status["bad"].runs == 2 and status["bad"].failures == 2
    assert status["bad"].last_error == "RuntimeError: store says no"
    assert status["bad"].last_success is None


def test_the_thread_runs_each_job_every_interval_and_stops_after_the_one_in_progress() -> None:
    gate = threading.Event()
    slow = Fake("slow", 0.01, gate=gate)
    jobs = Jobs([slow])
    jobs.start()
    assert slow.started.wait(5) and jobs.running
    stopping = threading.Thread(target=jobs.stop)
    stopping.start()
    time.sleep(0.1)
    assert stopping.is_alive()  # waits for the run in progress
    gate.set()
    stopping.join(5)
    assert not stopping.is_alive() and not jobs.running
    calls = slow.calls
    time.sleep(0.1)
    assert slow.calls == calls  # no run after the stop
    assert Jobs([Fake("x", 1, gate=threading.Event())]).stop() is True  # never started


@dataclass
class Expiry:
    expired: tuple[int, ...] = ()
    failed: dict[int, str] = field(default_factory=dict)
    position: int = 0
    watching: int = 0


class App:
    def __init__(self, outcome: Expiry) -> None:
        self.outcome = outcome

    def expire_due_vips(self) -> Expiry:
        return self.outcome


def test_vip_expiry_that_could_not_expire_someone_is_a_failed_run() -> None:
    assert ExpireVips(App(Expiry((1, 2), watching=3))).run() == "2 expired, 3 VIP member(s) watched"
    try:
        ExpireVips(App(Expiry((1,), {7: "unavailable"}))).run()
    except JobFailed as error:
        assert "could not expire 7: unavailable" in str(error)
    else:
        raise AssertionError("a failed expiry must fail the run")
