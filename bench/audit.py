"""Audit chain benchmarks: verifying a big log on PostgreSQL, and the chain's CPU cost per command.

Run (PostgreSQL at 127.0.0.1:5432, database `test`, trust auth; `DIANABOT_BENCH_DATABASE_URL`
overrides it; each run works in a private schema, dropped at the end):

    .venv/bin/python bench/audit.py verify --events 1000000      # ~5 minutes, mostly seeding
    .venv/bin/python bench/audit.py cpu --pairs 6 --per-user 60   # ~3 minutes

`verify`: seeds N events over 10,000 players with bench/projections.py's seeder (bulk inserts
of 10,000 stored events through the recorder, so every event gets its link exactly as a
command's would), then, each in a fresh process: `AuditChain.verify()` over the whole log
(target >= 100,000 events/s), and two same-run baselines: reading the same event and chain
rows page by page without hashing ("read only"), and hashing rows already in memory ("HMAC
only", a sample of 200,000).

`cpu`: CPU time (user + system, `getrusage`, this process only: not the database server's) per
command on the write side, with the chain and without it, in pairs of fresh processes whose
order alternates. "Without" swaps the recorder for one that writes exactly what it wrote before
the chain (PostgreSQL: one round trip `BEGIN; LOCK; NOTIFY; INSERT ... RETURNING; COMMIT`;
SQLite: the inserts alone). Two shapes, as bench/ab_cpu.py: `async` (32 users as asyncio tasks,
group commit) and `seq` (one thread, 32 users in turn, one transaction per command). Target:
at most 5 % more CPU per command with the chain (median of the pairs' ratios).

Not part of the test suite; results in docs/performance.md.
"""

from __future__ import annotations

import argparse
import hmac
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from dianabot.adapters.bootstrap import bootstrap  # noqa: E402
from dianabot.adapters.eventstore.chain import (  # noqa: E402
    GENESIS,
    PAGE,
    AuditChain,
    mac,
)
from dianabot.adapters.eventstore.postgres import (  # noqa: E402
    COLUMNS,
    ArrayInsertProcessRecorder,
    literal_rows,
)
from dianabot.adapters.eventstore.sqlite import ChainedProcessRecorder  # noqa: E402
from dianabot.adapters.settings import Settings  # noqa: E402
from dianabot.application.commands import ReactToPost  # noqa: E402
from dianabot.application.results import Origin  # noqa: E402
from eventsourcing.sqlite import SQLiteProcessRecorder  # noqa: E402
from psycopg import sql  # noqa: E402

BASE_URL = os.environ.get(
    "DIANABOT_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
KEY_FILE = Path(os.environ.get("DIANABOT_AUDIT_KEY_FILE", "dianabot-audit.key"))


def bench_module(name: str) -> Any:
    """bench/NAME.py, loaded by its path (this folder is off sys.path)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"bench_{name}"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


shapes = bench_module("cpu_shapes")


def schema_url(schema: str) -> str:
    base = BASE_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def drop(schema: str) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def settings(url: str, group: bool) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=url, group_commit=group, audit_key_file=str(KEY_FILE)
    )


# ----- verify ---------------------------------------------------------------------------------


def phase_seed(schema: str, events: int) -> dict[str, Any]:
    seeding = bench_module("projections")
    with bootstrap(settings(schema_url(schema), False), projections=False, policies=False) as s:
        started = time.perf_counter()
        written = seeding.Seeder(s.app, 10_000, events).run()
        seconds = time.perf_counter() - started
    with psycopg.connect(BASE_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("VACUUM ANALYZE dianabot_events")
        conn.execute("VACUUM ANALYZE dianabot_events_chain")
    return {"events": written, "seconds": seconds}


def phase_verify(schema: str) -> dict[str, Any]:
    url = schema_url(schema)
    with bootstrap(settings(url, False), projections=False, policies=False, read_only=True) as s:
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        report = AuditChain(s.app).verify()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
    assert report.ok, report.problem
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"events": report.checked, "seconds": seconds, "cpu_s": cpu}


def phase_read(schema: str) -> dict[str, Any]:
    """The same pages of events and links, read and paired, without hashing."""
    url = schema_url(schema)
    with bootstrap(settings(url, False), projections=False, policies=False, read_only=True) as s:
        store = AuditChain(s.app).store
        started = time.perf_counter()
        end, rows, position = store.event_head(), 0, 1
        while position <= end:
            stop = min(position + PAGE, end + 1)
            links = {link.position: link for link in store.links(position, stop)}
            for row in store.events(position, stop):
                rows += links[row.position].position == row.position
            position = stop
        seconds = time.perf_counter() - started
    return {"events": rows, "seconds": seconds}


def phase_hmac(schema: str, sample: int = 200_000) -> dict[str, Any]:
    """HMAC of rows already in memory (the hashing alone)."""
    url = schema_url(schema)
    with bootstrap(settings(url, False), projections=False, policies=False, read_only=True) as s:
        chain = AuditChain(s.app)
        rows = chain.store.events(1, sample + 1)
        key = chain.key.load()
    started = time.perf_counter()
    digest, previous = GENESIS, 0
    for row in rows:
        digest = mac(key, digest, previous, 0, row)
        previous = row.position
    seconds = time.perf_counter() - started
    assert hmac.compare_digest(digest, digest)
    return {"events": len(rows), "seconds": seconds}


# ----- CPU per command --------------------------------------------------------------------------


class UnchainedPostgres(ArrayInsertProcessRecorder):
    """What the PostgreSQL recorder wrote before the chain: one round trip, no link."""

    def insert_events(self, stored_events: Any, **kwargs: Any) -> Any:
        if kwargs.get("tracking") is not None:
            return super().insert_events(stored_events, **kwargs)
        rows = literal_rows(stored_events, self.datastore.originator_id_type)
        assert rows is not None
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f"{self._begin_and_lock}; INSERT INTO {self._table} {COLUMNS} "
                f"{rows} RETURNING notification_id; COMMIT"
            )
            for _ in range(self._results_before_insert):
                curs.nextset()
            return [row["notification_id"] for row in curs.fetchall()]


class UnchainedSQLite(ChainedProcessRecorder):
    """What the SQLite recorder wrote before the chain: the inserts alone."""

    def _insert_events(self, c: Any, stored_events: Any, **kwargs: Any) -> Any:
        return SQLiteProcessRecorder._insert_events(self, c, stored_events, **kwargs)


def time_the_chain(recorder: Any) -> list[float]:
    """The CPU the chain's own code takes in the writing thread (`time.thread_time`: blind to
    other processes' load): computing the links and, on PostgreSQL, the statement that carries
    them. Accumulated in the one-element list returned."""
    spent = [0.0]

    def timed(function: Any) -> Any:
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - started

        return measured

    recorder.chainer.links = timed(recorder.chainer.links)
    if hasattr(recorder, "_predicted"):
        recorder._predicted = timed(recorder._predicted)
    return spent


def phase_cpu(
    store: str, shape: str, chain: bool, per_user: int, own_code: bool = False
) -> dict[str, Any]:
    """`own_code`: also time the chain's own code (`time_the_chain`; its clock reads add a
    little CPU, so the with/without pairs run without it)."""
    schema = f"bench_audit_cpu_{uuid.uuid4().hex[:8]}"
    directory = Path(f"/tmp/{schema}")
    if store == "postgres":
        url = schema_url(schema)
    else:
        directory.mkdir()
        url = f"sqlite:///{directory / 'events.sqlite3'}"
    group = shape == "async"
    try:
        with bootstrap(settings(url, group), projections=False, policies=False) as s:
            app = s.app
            if not chain:
                unchained = UnchainedPostgres if store == "postgres" else UnchainedSQLite
                app.recorder.__class__ = unchained
            for user in shapes.USERS:
                assert app.register_player(user, f"u{user}", Origin.system("b", str(user))).ok
            own = time_the_chain(app.recorder) if own_code else [0.0]

            def origin(user: int, i: int) -> Any:
                return Origin.telegram(user * 10**7 + i, user)

            async def react(user: int, i: int) -> Any:
                return await app.bus.handle_async(ReactToPost(user, f"p:{i}", "x"), origin(user, i))

            own[0] = 0.0
            measured = shapes.measure(app, react, origin, shape, per_user)
            if chain:
                assert AuditChain(app).verify().ok
    finally:
        if store == "postgres":
            drop(schema)
        else:
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()
    commands = measured["commands"]
    return {
        "cpu_us": measured["cpu_s"] / commands * 1e6,
        "chain_cpu_us": own[0] / commands * 1e6,
        "per_s": commands / measured["seconds"],
    }


# ----- driver -----------------------------------------------------------------------------------


def run(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, cwd=ROOT
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main_verify(events: int, keep: bool) -> None:
    schema = f"bench_audit_{uuid.uuid4().hex[:8]}"
    try:
        seed = run("seed", schema, str(events))
        print(f"seeded {seed['events']:,} events in {seed['seconds']:.1f} s "
              f"({seed['events'] / seed['seconds']:,.0f} events/s, chain included)")  # fmt: skip
        for name in ("verify", "read", "hmac"):
            result = run(name, schema)
            rate = result["events"] / result["seconds"]
            print(f"  {name:<7} {result['events']:>10,} events  {result['seconds']:7.2f} s  "
                  f"{rate:>10,.0f} events/s")  # fmt: skip
        verdict = run("verify", schema)
        rate = verdict["events"] / verdict["seconds"]
        meets = "meets" if rate >= 100_000 else "MISSES"
        print(f"  verify (again) {rate:,.0f} events/s: {meets} the target of 100,000 events/s")
    finally:
        if keep:
            print(f"kept schema {schema}")
        else:
            drop(schema)


def main_cpu(stores: list[str], pairs: int, per_user: int) -> None:
    for store in stores:
        for shape in ("async", "seq"):
            ratios, cpu = [], {True: [], False: []}
            for pair in range(pairs):
                order = [True, False] if pair % 2 == 0 else [False, True]
                results = {c: run("cpu", store, shape, str(int(c)), str(per_user)) for c in order}
                for c in order:
                    cpu[c].append(results[c]["cpu_us"])
                ratios.append(results[True]["cpu_us"] / results[False]["cpu_us"])
            median = statistics.median(ratios)
            without, with_ = statistics.median(cpu[False]), statistics.median(cpu[True])
            print(f"{store:<8} {shape:<5} CPU/command without {without:7.0f} µs, "
                  f"with {with_:7.0f} µs; with/without median "
                  f"{median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}, {pairs} pairs): "
                  f"{'meets' if median <= 1.05 else 'MISSES'} <= 1.05")  # fmt: skip
            timed = run("cpu", store, shape, "1", str(per_user), "own")
            print(f"{'':<14} the chain's own code (thread CPU: links and statement) in one more "
                  f"run: {timed['chain_cpu_us']:.0f} of {timed['cpu_us']:.0f} µs per command "
                  f"({timed['chain_cpu_us'] / timed['cpu_us']:.1%})")  # fmt: skip


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--phase":
        phase, *rest = sys.argv[2:]
        if phase == "seed":
            result = phase_seed(rest[0], int(rest[1]))
        elif phase == "verify":
            result = phase_verify(rest[0])
        elif phase == "read":
            result = phase_read(rest[0])
        elif phase == "hmac":
            result = phase_hmac(rest[0])
        else:
            result = phase_cpu(rest[0], rest[1], rest[2] == "1", int(rest[3]), "own" in rest[4:])
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    verify = sub.add_parser("verify")
    verify.add_argument("--events", type=int, default=1_000_000)
    verify.add_argument("--keep", action="store_true", help="keep the seeded schema")
    cpu = sub.add_parser("cpu")
    cpu.add_argument("--pairs", type=int, default=6)
    cpu.add_argument("--per-user", type=int, default=60)
    cpu.add_argument("--stores", default="postgres,sqlite")
    args = parser.parse_args()
    if args.bench == "verify":
        main_verify(args.events, args.keep)
    else:
        main_cpu(args.stores.split(","), args.pairs, args.per_user)


if __name__ == "__main__":
    main()
