"""Policy benchmark: catch-up over a big history, and live latency from a command to its badge.

Run (PostgreSQL at 127.0.0.1:5432, database `test`, trust auth; a few minutes):

    .venv/bin/python bench/policies.py --events 100000 --players 2000

1. Catch-up. Seeds N events over P players in a private schema with `bench/projections.py`'s
   seeder, without the badge awards (those are the policies' to make), then, each in a fresh
   process: every policy from position 0 to the head (`PolicyRunner.catch_up`: events/s, and
   the awards it made), and, in the same run and on the same history, the full rebuild of the
   read models (the projectors' rate, the baseline asked for beside it).
2. Live latency. With the projectors and the policies following the log in background threads
   (as `dianabot workers` runs them), a command that earns a badge (an admin grant crossing 100
   besitos) is issued every 50 ms, and the time from the command's return until the badge is
   visible in the `badges_held` read model is measured: p50 and p99, on PostgreSQL (LISTEN/NOTIFY
   wakes both runners) and on SQLite (both runners poll, every 0.25 s by default).

Prints a table; docs/performance.md has a recorded run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from dianabot.adapters.bootstrap import bootstrap  # noqa: E402
from dianabot.adapters.eventstore.log import event_log  # noqa: E402
from dianabot.adapters.settings import Settings  # noqa: E402
from dianabot.application.commands import GrantPoints, RegisterPlayer  # noqa: E402
from dianabot.application.policies import build  # noqa: E402
from dianabot.application.results import Origin  # noqa: E402
from dianabot.projections.subscriptions import PolicyRunner  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import select  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_projections", ROOT / "bench/projections.py")
assert _spec is not None and _spec.loader is not None
seeding = importlib.util.module_from_spec(_spec)
sys.modules["bench_projections"] = seeding  # its dataclasses look their module up
_spec.loader.exec_module(seeding)

ADMIN = 42
PACE = 0.05


# PostgreSQL has no default audit key file (docs/operations.md): a benchmark names one.
os.environ.setdefault(
    "DIANABOT_AUDIT_KEY_FILE", str(Path(tempfile.gettempdir()) / "dianabot-bench-audit.key")
)


def phase_seed(schema: str, players: int, events: int) -> dict[str, Any]:
    app, _ = seeding.open_app(schema)
    seeder = seeding.Seeder(app, players, events)
    seeder.awards = False
    with seeding.timed() as t:
        written = seeder.run()
    app.close()
    with seeding.pg_connect(schema) as conn:
        conn.execute(f"VACUUM ANALYZE {seeding.events_table(app)}")
    return {"events": written, "seconds": t["seconds"]}


def phase_catchup(schema: str) -> dict[str, Any]:
    app, _ = seeding.open_app(schema)
    log = event_log(app)
    head = log.head()
    runner = PolicyRunner(app, log, build(app))
    with seeding.timed() as t:
        runner.catch_up(until=head)
    made = log.head() - head
    status = runner.status()
    app.close()
    return {
        "events": head,
        "seconds": t["seconds"],
        "events_written": made,
        "commands": sum(s.commands for s in runner.slots),
        "parked": sum(s.parked for s in status),
        "policies": len(status),
    }


def phase_rebuild(schema: str) -> dict[str, Any]:
    app, database = seeding.open_app(schema)
    projections = seeding.open_projections(app, database)
    result = projections.rebuild()
    projections.close()
    app.close()
    return {"events": result.events, "seconds": result.seconds}


def phase_latency(url: str, samples: int) -> dict[str, Any]:
    settings = Settings(database_url=url, admin_ids=[ADMIN], _env_file=None)  # type: ignore[call-arg]
    latencies: list[float] = []
    with bootstrap(settings) as services:
        projections, policies = services.projections, services.policies
        assert projections is not None and policies is not None
        projections.start()
        policies.start()
        bus = services.app.bus
        held = projections.table("badges_held")
        first = 1_000_000 + int(time.time()) % 100_000 * 10
        for n in range(samples):
            user = first + n
            assert bus.handle(RegisterPlayer(user, f"u{user}"), Origin.telegram(n + 1, user)).ok
            grant = GrantPoints(user, admin_id=ADMIN, amount=150, reason="bench")
            assert bus.handle(grant, Origin.admin(ADMIN)).ok
            issued = time.perf_counter()
            query = select(held.c.held).where(
                held.c.telegram_id == user, held.c.badge_slug == "besitos-100"
            )
            while True:
                with projections.store.read() as conn:
                    if conn.execute(query).scalar():
                        break
                if time.perf_counter() - issued > 10:
                    raise RuntimeError(f"badge of {user} not visible after 10 s")
                time.sleep(0.002)
            latencies.append(time.perf_counter() - issued)
            time.sleep(PACE)
        policies.stop()
        projections.stop()
    latencies.sort()
    return {
        "samples": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "max_ms": 1000 * latencies[-1],
    }


def run(phase: str, *args: str) -> dict[str, Any]:
    print(f"  {phase}...", file=sys.stderr, flush=True)
    command = [sys.executable, __file__, "--phase", phase, *args]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--players", type=int, default=2_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--save", metavar="FILE", help="also write the raw measurements as JSON")
    args = parser.parse_args()
    if args.phase:
        phases = {
            "seed": lambda: phase_seed(args.target, args.players, args.events),
            "catchup": lambda: phase_catchup(args.target),
            "rebuild": lambda: phase_rebuild(args.target),
            "latency": lambda: phase_latency(args.target, args.samples),
        }
        print(json.dumps(phases[args.phase]()))
        return
    schema = f"bench_pol_{uuid.uuid4().hex[:8]}"
    live_schema = f"bench_live_{uuid.uuid4().hex[:8]}"
    sizes = ["--events", str(args.events), "--players", str(args.players)]
    results: dict[str, dict[str, Any]] = {}
    try:
        results["seed"] = run("seed", "--target", schema, *sizes)
        results["catchup"] = run("catchup", "--target", schema)
        results["rebuild"] = run("rebuild", "--target", schema)
        pg_url = seeding.schema_url(live_schema)
        results["latency_pg"] = run("latency", "--target", pg_url, "--samples", str(args.samples))
        with tempfile.TemporaryDirectory() as folder:
            sqlite_url = f"sqlite:///{folder}/bench.sqlite3"
            results["latency_sqlite"] = run(
                "latency", "--target", sqlite_url, "--samples", str(args.samples)
            )
    finally:
        with psycopg.connect(seeding.BASE_URL, autocommit=True) as conn:
            for name in (schema, live_schema):
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )
    print(report(results))
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=2) + "\n")


def report(results: dict[str, dict[str, Any]]) -> str:
    catchup, rebuild = results["catchup"], results["rebuild"]
    catchup_rate = catchup["events"] / catchup["seconds"]
    rebuild_rate = rebuild["events"] / rebuild["seconds"]
    pg, lite = results["latency_pg"], results["latency_sqlite"]

    def latency(label: str, numbers: dict[str, Any], target_ms: float) -> str:
        verdict = "met" if numbers["p99_ms"] < target_ms else "MISSED"
        return (
            f"  {label:27} p50 {numbers['p50_ms']:.0f} ms  p99 {numbers['p99_ms']:.0f} ms  "
            f"max {numbers['max_ms']:.0f} ms  ({verdict}: p99 < {target_ms:.0f} ms)"
        )

    return "\n".join(
        [
            f"history: {results['seed']['events']:,} events (no awards); "
            f"{catchup['policies']} policies",
            f"policy catch-up    {catchup_rate:>9,.0f} ev/s ({catchup['seconds']:.1f} s; "
            f"{catchup['commands']:,} commands, {catchup['events_written']:,} events written, "
            f"{catchup['parked']} parked)",
            f"projection rebuild {rebuild_rate:>9,.0f} ev/s ({rebuild['seconds']:.1f} s); "
            f"catch-up / rebuild = {catchup_rate / rebuild_rate:.2f}x",
            f"live latency, command -> badge visible ({pg['samples']} samples each):",
            latency("PostgreSQL (LISTEN/NOTIFY)", pg, 250),
            latency("SQLite (polling 0.25 s)", lite, 1000),
        ]
    )


if __name__ == "__main__":
    main()
