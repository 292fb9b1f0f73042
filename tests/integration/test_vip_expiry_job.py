"""Time-driven work (issue 12, item 3): VIP periods expire within a bounded delay after their
end, once, across restarts of the workers and with two of them running the job."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from dianabot.adapters.bootstrap import Services, bootstrap
from dianabot.adapters.eventstore.log import event_log
from dianabot.adapters.workers import Workers
from dianabot.application.clock import ManualClock
from dianabot.application.jobs import ExpireVips
from dianabot.application.results import Origin
from dianabot.domain.ids import player_id

from tests.conftest import ADMIN_ID, make_settings

USERS = [801 + n for n in range(10)]


def expiries(services: Services) -> Counter[int]:
    """VipExpired events in the log, by Telegram id."""
    log = event_log(services.app)
    streams = {player_id(user): user for user in USERS}
    found: Counter[int] = Counter()
    for page in log.pages(0, log.head(), 10_000):
        for row in page:
            if row.topic.endswith("VipExpired"):
                found[streams[row.originator_id]] += 1
    return found


def grant_vip(services: Services, users: list[int], days: int = 1) -> None:
    app = services.app
    for user in users:
        assert app.register_player(user, f"user {user}", Origin.telegram(user, user)).ok
        assert app.grant_vip(user, days, "admin", f"gift:{user}", Origin.admin(ADMIN_ID)).ok


@pytest.fixture
def services(database_url: str, clock: ManualClock) -> Iterator[Services]:
    with bootstrap(make_settings(database_url), clock=clock) as wired:
        yield wired


def test_the_workers_expire_a_vip_period_within_the_interval_after_its_end_once(
    services: Services, clock: ManualClock
) -> None:
    grant_vip(services, USERS[:2])
    settings = make_settings(services.settings.database_url, vip_expiry_interval=0.1)
    with Workers(services, settings, serve=False) as workers:
        time.sleep(0.3)  # several runs: nothing is due yet
        assert expiries(services) == Counter()
        clock.advance(timedelta(days=1, seconds=1))
        ended = time.monotonic()
        while not expiries(services) and time.monotonic() - ended < 5:
            time.sleep(0.02)
        delay = time.monotonic() - ended
        time.sleep(0.5)  # more runs: nothing more
        assert expiries(services) == Counter(dict.fromkeys(USERS[:2], 1))
        runs = {s.name: s for s in workers.jobs.status()}["vip-expiry"]
        assert runs.runs >= 5 and runs.failures == 0
    assert delay < 1.0, f"expired {delay:.2f} s after the period ended (interval 0.1 s)"
    for user in USERS[:2]:
        assert services.app.vip_until(user) is None


def test_vip_expiry_happens_once_with_two_workers_and_across_a_restart(
    shared_database_url: str, clock: ManualClock
) -> None:
    settings = make_settings(shared_database_url)
    with bootstrap(settings, clock=clock, projections=False) as first:
        grant_vip(first, USERS)
        clock.advance(timedelta(days=1, minutes=1))
        with bootstrap(settings, clock=clock, projections=False) as second:
            jobs = [ExpireVips(first.app), ExpireVips(second.app)]
            start = threading.Barrier(2)
            summaries: list[str] = []

            def run(job: ExpireVips) -> None:
                start.wait()
                summaries.append(job.run())

            threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert expiries(first) == Counter(dict.fromkeys(USERS, 1))
            expired = sorted(int(s.split()[0]) for s in summaries)
            assert sum(expired) == len(USERS), summaries  # between them, each once
    # A restart: a new application reads what is due from the history, finds nothing.
    with bootstrap(settings, clock=clock, projections=False) as restarted:
        assert ExpireVips(restarted.app).run().startswith("0 expired")
        assert expiries(restarted) == Counter(dict.fromkeys(USERS, 1))
        # A new period after the expiry expires in its turn, once.
        assert restarted.app.grant_vip(USERS[0], 2, "admin", "again", Origin.admin(ADMIN_ID)).ok
        clock.advance(timedelta(days=2, minutes=1))
        assert ExpireVips(restarted.app).run().startswith("1 expired")
        assert ExpireVips(restarted.app).run().startswith("0 expired")
        assert expiries(restarted)[USERS[0]] == 2
