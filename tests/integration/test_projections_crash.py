"""A projector process killed in the middle of a batch never applies an event twice nor skips one.

The child process folds a batch, writes its rows and is SIGKILLed inside the write transaction,
before the commit (the worst moment: rows written, position not). A restarted runner must carry on
from the last committed position and end with exactly what a replay gives.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dianabot.application.clock import ManualClock
from dianabot.domain.ids import player_id
from dianabot.projections.registry import ALL_NAMES

from tests.conftest import make_settings
from tests.integration.test_projections import ANA, BRUNO, CARLA, all_rows, head, play

ROOT = Path(__file__).resolve().parents[2]
BATCH = 7

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r})
    from dianabot.adapters.bootstrap import bootstrap
    from tests.conftest import make_settings

    kill_at = int(sys.argv[1])
    flushes = 0

    def die_before_commit(conn, batch):
        global flushes
        flushes += 1
        if flushes == kill_at:
            sys.stdout.write(f"killed after writing rows up to {{batch.end}}\\n")
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    with bootstrap(make_settings({url!r})) as wired:
        wired.projections.runner.max_batch = {batch}
        wired.projections.runner.page_size = 3
        wired.projections.runner.on_flush = die_before_commit
        wired.projections.catch_up()
    print("finished without being killed")
    """
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite3'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.parametrize("kill_at", [1, 3])
def test_a_kill_mid_batch_neither_doubles_nor_skips(
    durable_url: str, clock: ManualClock, kill_at: int
) -> None:
    from dianabot.adapters.bootstrap import bootstrap

    with bootstrap(make_settings(durable_url), clock=clock) as wired:
        play(wired.app, clock)
        target = head(wired.app)

    script = CHILD.format(root=str(ROOT), url=durable_url, batch=BATCH)
    child = subprocess.run(
        [sys.executable, "-c", script, str(kill_at)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "DIANABOT_LOG_LEVEL": "WARNING"},
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert "killed after writing rows" in child.stdout

    with bootstrap(make_settings(durable_url), clock=clock) as wired:
        projections = wired.projections
        assert projections is not None
        committed = {s.name: s.position for s in projections.status()}
        # Exactly the batches before the killed one committed; the killed one left no trace.
        assert set(committed.values()) == {(kill_at - 1) * BATCH}
        assert projections.catch_up() == target
        resumed = all_rows(projections)
        points = {r["telegram_id"]: r for r in resumed["player_points"].values()}
        for user in (ANA, BRUNO, CARLA):
            assert points[user]["balance"] == wired.app.get_player(user).balance
        engagement = resumed["engagement"][player_id(ANA)]
        assert engagement["reactions"] == 12 and engagement["checkins"] == 2
        assert projections.reconcile().consistent
        settled = all_rows(projections)  # and the reconciliation's summary, recorded after it
        assert settled["reconciliations"] and not resumed["reconciliations"]
        assert {**settled, "reconciliations": {}} == resumed
        projections.rebuild(list(ALL_NAMES))
        assert all_rows(projections) == settled
