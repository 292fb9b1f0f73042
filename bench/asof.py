"""As-of benchmark: the leaderboard at a past moment against a full rebuild, same run.

Run (PostgreSQL at 127.0.0.1:5432, database `test`, trust auth; ~10 minutes at full size):

    .venv/bin/python bench/asof.py --events 1000000 --players 10000 --rounds 3

Seeds N events over P players in a private schema with `bench/projections.py`'s seeder (the
same history as the read-side benchmark, chained by the store's recorder), then measures, each
in a fresh interpreter, alternating (rebuild, as-of at the head, as-of at the middle) for
`--rounds` rounds:

- baseline "rebuild": `projections rebuild leaderboard` (`projections.rebuild.rebuild`: shadow
  tables, replay from position 0 to the head, swap in);
- "as-of head": `audit leaderboard --as-of now` without the CLI: the position committed by then
  (the audit chain), then the leaderboard projector folded in memory up to it
  (`projections.auditing.asof.leaderboard_as_of`) — the worst case, the whole log;
- "as-of middle": the same at the commit time of the middle position.

Target (issue 15): as-of over 1,000,000 events within 1.2x of the full rebuild (the median
as-of head / the median rebuild). Prints a table; see docs/performance.md for a recorded run.
Not part of the test suite.
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

_spec = importlib.util.spec_from_file_location(
    "bench_projections", ROOT / "bench" / "projections.py"
)
assert _spec is not None and _spec.loader is not None
seeding = importlib.util.module_from_spec(_spec)
sys.modules["bench_projections"] = seeding  # its dataclasses look their module up
_spec.loader.exec_module(seeding)

import psycopg  # noqa: E402
from dianabot.adapters.cli.audit_trail import commit_times  # noqa: E402
from dianabot.adapters.eventstore.chain import AuditChain, moment  # noqa: E402
from dianabot.adapters.eventstore.log import event_log  # noqa: E402
from dianabot.projections.auditing.asof import leaderboard_as_of, position_as_of  # noqa: E402
from psycopg import sql  # noqa: E402

# PostgreSQL has no default audit key file (docs/operations.md): a benchmark names one.
os.environ.setdefault(
    "DIANABOT_AUDIT_KEY_FILE", str(Path(tempfile.gettempdir()) / "dianabot-bench-audit.key")
)


def phase_rebuild(schema: str) -> dict[str, Any]:
    app, database = seeding.open_app(schema)
    projections = seeding.open_projections(app, database)
    started = time.perf_counter()
    result = projections.rebuild(["leaderboard"])
    seconds = time.perf_counter() - started
    projections.close()
    app.close()
    return {"events": result.events, "seconds": seconds, "peak_rss_mb": seeding.peak_rss_mb()}


def phase_asof(schema: str, where: str) -> dict[str, Any]:
    app, _database = seeding.open_app(schema)
    log = event_log(app)
    chain = AuditChain(app)
    head = chain.head()
    assert head is not None, "the seeded store has no chain"
    if where == "head":
        when = moment(head.committed_at)
    else:
        middle = chain.store.link_at(head.position // 2)
        assert middle is not None
        when = moment(middle.committed_at)
    started = time.perf_counter()
    times, basis = commit_times(app, log)
    position = position_as_of(times, when, moment(head.committed_at))
    board = leaderboard_as_of(log, when, position, limit=10)
    seconds = time.perf_counter() - started
    app.close()
    return {
        "events": board.events,
        "position": position,
        "seconds": seconds,
        "players": board.players,
        "top": board.rows[0]["points"] if board.rows else 0,
        "basis": basis,
        "peak_rss_mb": seeding.peak_rss_mb(),
    }


PHASES = {
    "seed": lambda a: seeding.phase_seed(a.schema, a.players, a.events),
    "rebuild": lambda a: phase_rebuild(a.schema),
    "asof-head": lambda a: phase_asof(a.schema, "head"),
    "asof-middle": lambda a: phase_asof(a.schema, "middle"),
}


def run_phase(args: argparse.Namespace, phase: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--phase", phase, "--schema", args.schema,
               "--events", str(args.events), "--players", str(args.players)]  # fmt: skip
    print(f"  {phase}...", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(results: dict[str, list[dict[str, Any]]], seed: dict[str, Any]) -> str:
    def median(name: str) -> float:
        return statistics.median(r["seconds"] for r in results[name])

    rebuild = median("rebuild")
    lines = [
        f"seeded {seed['events']:,} events in {seed['seconds']:.1f} s",
        f"{'measure':<14} {'events':>10} {'median s':>9} {'runs (s)':<28} {'vs rebuild':>10} "
        "rss MB",
    ]
    for name in ("rebuild", "asof-head", "asof-middle"):
        runs = results[name]
        shown = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        lines.append(
            f"{name:<14} {runs[0]['events']:>10,} {median(name):>9.2f} {shown:<28} "
            f"{median(name) / rebuild:>9.2f}x {max(r['peak_rss_mb'] for r in runs):.0f}"
        )
    ratio = median("asof-head") / rebuild
    verdict = "met" if ratio <= 1.2 else "NOT met"
    lines.append(f"target: as-of (whole log) <= 1.2x the rebuild: {ratio:.2f}x, {verdict}")
    lines.append(f"as-of position by: {results['asof-head'][0]['basis']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--schema", default=None, help="reuse a seeded schema (kept afterwards)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument("--save", metavar="FILE", help="also write the raw measurements as JSON")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return
    reuse = args.schema is not None
    args.schema = args.schema or f"bench_asof_{uuid.uuid4().hex[:8]}"
    results: dict[str, list[dict[str, Any]]] = {"rebuild": [], "asof-head": [], "asof-middle": []}
    try:
        seed = run_phase(args, "seed") if not reuse else {"events": 0, "seconds": 0.0}
        for _ in range(args.rounds):
            for phase in results:
                results[phase].append(run_phase(args, phase))
    finally:
        if not (reuse or args.keep):
            with psycopg.connect(seeding.BASE_URL, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(args.schema))
                )
    print(report(results, seed))
    if args.save:
        Path(args.save).write_text(json.dumps({"seed": seed, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
