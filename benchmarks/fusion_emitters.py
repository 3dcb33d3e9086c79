"""Benchmark: XLA's older CPU fusion emitters against its default ones, cold and warm fits.

bayescale compiles the program of chains on separate CPU devices with XLA's older fusion
emitters when its sampling work (runs x iterations per chain) is at most
``bayescale.sampler.LEGACY_EMITTERS_MAX_RUN_ITERATIONS``: they compile faster and run slower.
This script measures both sides of that trade, each row with one kind of emitters whatever
bayescale would pick, on speed.py's problems (the 240 Chinchilla runs; 10, 30, 100 simulated
groups of 30 runs), each fit in a fresh Python process with the on-disk
compilation cache off: "cold" is the first `ScalingModel.fit` (tracing and compiling included),
"warm" a second identical fit in the same process (the compiled program reused). The two
emitters alternate, pair after pair, so that the machine's drift falls on both alike.

Run from the repository root::

    python benchmarks/fusion_emitters.py                       # 3 pairs per problem
    python benchmarks/fusion_emitters.py --pairs 1 --groups 1 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402
from revisions import cold_and_warm, table  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import sampler  # noqa: E402
from bayescale.inference import CACHE_ENV  # noqa: E402

EMITTERS = ("older", "default")
PROBLEM_GROUPS = (1, 10, 30, 100)


def fit_twice(groups: int, emitters: str) -> dict:
    """In this process: a cold and a warm fit of one problem, with one kind of emitters."""
    if emitters not in EMITTERS:
        raise ValueError(f"unknown emitters {emitters!r}; known are {EMITTERS}")
    older = emitters == "older"
    sampler.LEGACY_EMITTERS_MAX_RUN_ITERATIONS = sys.maxsize if older else -1
    return cold_and_warm(groups)


def in_new_process(groups: int, emitters: str) -> dict:
    """`fit_twice` in a fresh interpreter (`main` turns the on-disk compilation cache off)."""
    command = [sys.executable, __file__, "--one", str(groups), emitters]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per problem")
    parser.add_argument("--groups", type=int, nargs="+", default=list(PROBLEM_GROUPS))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(fit_twice(int(args.one[0]), args.one[1])))
        return
    os.environ[CACHE_ENV] = ""  # what the fits' processes get; shown in the header
    print(speed.cf.environment(bs.ScalingModel.default_sampler_config["num_chains"]))
    limit = sampler.LEGACY_EMITTERS_MAX_RUN_ITERATIONS
    print(f"- bayescale picks the older emitters up to {limit:,} run-iterations\n", flush=True)
    results: dict[tuple[int, str], list[dict]] = {}
    for groups in args.groups:
        for _ in range(args.pairs):
            for emitters in EMITTERS:
                results.setdefault((groups, emitters), []).append(in_new_process(groups, emitters))
    print(table(results, "emitters"))
    print(f"\nload average at end (1, 5, 15 min): {speed.cf.load_average()}")


if __name__ == "__main__":
    main()
