"""Data integrity under concurrency: overlapping users, several writers, nothing lost or doubled."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from dianabot.adapters.bootstrap import Services
from dianabot.application.clock import ManualClock
from dianabot.application.results import Origin
from dianabot.application.service import DianaApplication
from dianabot.domain.rules import PointSource

THREADS = 8
AWARDS_PER_THREAD = 200
PLAYERS = 5


@pytest.mark.parametrize("group_commit", [False, True], ids=["direct", "group-commit"])
def test_eight_threads_of_awards_to_overlapping_players_lose_nothing(
    postgres_url: str, clock: ManualClock, group_commit: bool
) -> None:
    """8 threads x 200 awards on PostgreSQL, split over two application instances (two
    'processes' with their own caches), all hitting the same five players."""
    from dianabot.adapters.bootstrap import bootstrap

    from tests.conftest import make_settings

    with bootstrap(make_settings(postgres_url, group_commit=group_commit), clock=clock) as one:
        two = DianaApplication(
            one.database.eventsourcing_env, clock=clock, group_commit=group_commit
        )
        try:
            _hammer(one, two)
        finally:
            two.close()


def _hammer(one: Services, two: DianaApplication) -> None:
    apps = [one.app, two]
    for user in range(1, PLAYERS + 1):
        assert one.app.register_player(user, f"u{user}", Origin.telegram(user, user)).ok
    outcomes: Counter[str] = Counter()
    expected: Counter[int] = Counter()
    lock = threading.Lock()

    def work(thread: int) -> None:
        app = apps[thread % 2]
        for n in range(AWARDS_PER_THREAD):
            user = (thread + n) % PLAYERS + 1
            amount = 1 + (n % 3)
            result = app.award_points(
                user,
                PointSource.STORY,
                amount,
                f"t{thread}:{n}",
                Origin.system("test", f"{10_000 * thread + n}"),
            )
            with lock:
                outcomes[result.outcome] += 1
                if result.ok:
                    expected[user] += amount

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == {"ok": THREADS * AWARDS_PER_THREAD}
    fresh = DianaApplication(one.database.eventsourcing_env)
    try:
        for user in range(1, PLAYERS + 1):
            player = fresh.get_player(user)
            assert player.balance == expected[user]
            assert player.lifetime_earned == expected[user]
        awarded = [
            n
            for n in fresh.recorder.select_notifications(1, 100_000)
            if n.topic.endswith(".PointsAwarded")
        ]
        assert len(awarded) == THREADS * AWARDS_PER_THREAD
        references = [fresh.mapper.to_domain_event(n).reference for n in awarded]
        assert len(set(references)) == len(references)
    finally:
        fresh.close()
