"""Two processes writing with group commit to one store at the same time: the chain stays one
chain (each transaction reads the head under the store's write lock), so the store verifies.
Users overlap between the processes, so some commands conflict and retry (on PostgreSQL a
conflict leaves a gap in the positions, which the chain skips)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dianabot.adapters.bootstrap import bootstrap
from dianabot.adapters.eventstore.chain import AuditChain

from tests.conftest import make_settings

WRITER = """
import sys, threading, time
from pathlib import Path
from dianabot.adapters.bootstrap import bootstrap
from dianabot.application.results import Origin
from tests.conftest import make_settings

url, name, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
with bootstrap(make_settings(url, group_commit=True), projections=False, policies=False) as wired:
    app = wired.app
    while not go.exists():
        time.sleep(0.01)
    def work(thread):
        for i in range(15):
            user = 5000 + (thread * 15 + i) % 40  # both processes touch the same 40 users
            update = name * 1_000_000 + thread * 1000 + i
            app.register_player(user, "u", Origin.telegram(update, user))
            app.react(user, f"-100:{name}{thread}{i}", "x", Origin.telegram(update + 500, user))
    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads: t.start()
    for t in threads: t.join()
"""


def test_two_processes_writing_at_once_leave_one_verifiable_chain(
    shared_database_url: str, tmp_path: Path
) -> None:
    with bootstrap(make_settings(shared_database_url), projections=False, policies=False):
        pass  # tables (and the SQLite key) exist before the writers race
    go = tmp_path / "go"
    root = Path(__file__).resolve().parents[2]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, shared_database_url, str(n), str(go)], cwd=root
        )
        for n in (1, 2)
    ]
    time.sleep(1.0)
    go.touch()
    assert [w.wait(timeout=240) for w in writers] == [0, 0]
    with bootstrap(
        make_settings(shared_database_url), projections=False, policies=False, read_only=True
    ) as wired:
        report = AuditChain(wired.app).verify()
        assert report.ok, report.problem
        assert report.checked > 200
        assert report.checked == len(
            wired.app.recorder.select_notifications(1, 10_000)
        )  # every event chained
