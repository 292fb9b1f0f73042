"""Paired A/B of the write-side benchmark between two checkouts (main before and after a change).

Run: `.venv/bin/python bench/compare.py BASELINE_DIR [CANDIDATE_DIR] [--pairs 10]`

Each pair runs `bench/write_side.py` of the baseline checkout, then of the candidate (the order
alternates from pair to pair), each as its own process with the same arguments, and takes the
ratio candidate/baseline of every throughput row both print. The machine's speed drifts within a
minute, so only ratios of runs taken side by side are compared; the median of the pairs is the
figure to quote, min and max say how noisy the machine was.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROW = re.compile(r"^\s+(postgres|sqlite)\s+(.+?)\s+([\d.]+) cmd/s\b", re.MULTILINE)
HERE = Path(__file__).resolve().parents[1]


def throughput(checkout: Path, bench_args: list[str]) -> dict[str, float]:
    """One run of a checkout's write-side benchmark: cmd/s by (store, case)."""
    done = subprocess.run(
        [sys.executable, str(checkout / "bench" / "write_side.py"), *bench_args],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return {f"{store} {case}": float(value) for store, case, value in ROW.findall(done.stdout)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path, nargs="?", default=HERE)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--bench-args",
        default="--stores postgres --seconds 2 --rounds 1 --events 100",
        help="arguments given to both checkouts' bench/write_side.py",
    )
    args = parser.parse_args(argv)
    bench_args = args.bench_args.split()
    ratios: dict[str, list[float]] = {}
    for pair in range(args.pairs):
        order = [args.baseline, args.candidate]
        if pair % 2:
            order.reverse()
        runs = {checkout: throughput(checkout, bench_args) for checkout in order}
        base, cand = runs[args.baseline], runs[args.candidate]
        for case in base.keys() & cand.keys():
            if base[case] > 0:
                ratios.setdefault(case, []).append(cand[case] / base[case])
        print(f"pair {pair + 1}/{args.pairs} done", file=sys.stderr, flush=True)
    print(f"candidate/baseline, {args.pairs} paired runs ({args.bench_args})")
    print(f"{'case':62} {'median':>7} {'min':>6} {'max':>6}")
    for case in sorted(ratios):
        values = ratios[case]
        print(f"{case:62} {statistics.median(values):7.3f} {min(values):6.3f} {max(values):6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
