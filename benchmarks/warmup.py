"""Benchmark: the Laplace warmup of ``fit`` against NumPyro's, cold and warm, and divergences.

For each warmup scheme (``warmup="laplace"``, the default of ``fit``, and ``"standard"``,
NumPyro's adaptation from the identity), in one process with the compilation cache off:

* ``speed.py``'s problems (Chinchilla's 240 runs; simulated 10 and 100 groups, Student-t noise,
  4 chains x 1000/1000): one fit compiling from scratch (cold), then a second fit of the same
  shape with the next seed (warm: no tracing, no compilation), with min bulk ESS and gradient
  evaluations per draw;
* the power-law recovery table of ``tests/test_recovery.py`` (a weakly identified exponent, one
  of the posteriors where warmup schemes differ in divergences), fitted with sampler seeds
  0..N-1 at the default settings: divergent transitions per seed.

Run from the repository root (needs the dev extras, for the test module's table)::

    python benchmarks/warmup.py                      # 1, 10, 100 groups; 6 seeds
    python benchmarks/warmup.py --groups 1 10 --seeds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ["BAYESCALE_CACHE_DIR"] = ""  # every first fit of a shape compiles from scratch

import speed  # noqa: E402
from test_recovery import POWER_TRUTH, _power_frame  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.inference import WARMUPS  # noqa: E402

RECOVERY_DATA_SEED = 20240602  # the table of test_power_law_on_flops_recovers_known_parameters


def fit_row(problem: speed.Problem, warmup: str, seed: int) -> str:
    """Time one default fit of ``problem``; a markdown row."""
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=speed.NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=seed, warmup=warmup, progress_bar=False)
        wall = time.perf_counter() - start
    diagnostics = post.diagnostics
    steps = float(post.idata.sample_stats["n_steps"].values.mean())
    when = "cold" if seed == speed.SEED else "warm"
    return (
        f"| {problem.name} | {warmup} | {when} | {wall:.1f} | "
        f"{diagnostics.table['ess_bulk'].min():.0f} | {steps:.1f} | "
        f"{diagnostics.num_divergent} | {diagnostics.table['r_hat'].max():.3f} |"
    )


def divergences(warmup: str, seeds: int) -> list[int]:
    """Divergent transitions of the power-law recovery fit, per sampler seed."""
    frame = _power_frame(seed=RECOVERY_DATA_SEED, truth=POWER_TRUTH)
    model = bs.ScalingModel("power", noise="lognormal")
    counts = []
    for seed in range(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplingWarning)
            counts.append(model.fit(frame, seed=seed, warmup=warmup).diagnostics.num_divergent)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 10, 100])
    parser.add_argument("--seeds", type=int, default=6, help="sampler seeds of the recovery fit")
    args = parser.parse_args()
    print("## Warmup schemes: Laplace start against NumPyro's adaptation\n")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"- bayescale {bs.__version__}, compilation cache off\n")
    problems = [speed.problem_for(groups) for groups in args.groups]
    print(
        "| problem | warmup | fit | wall s | min bulk ESS | grad evals/draw | divergences "
        "| max R-hat |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for problem in problems:
        for warmup in WARMUPS:
            for seed in (speed.SEED, speed.SEED + 1):
                print(fit_row(problem, warmup, seed), flush=True)
    print(f"\n### Power-law recovery table, sampler seeds 0-{args.seeds - 1}\n")
    print("| warmup | divergences per seed | total |")
    print("|---|---|---:|")
    for warmup in WARMUPS:
        counts = divergences(warmup, args.seeds)
        print(f"| {warmup} | {counts} | {sum(counts)} |", flush=True)


if __name__ == "__main__":
    main()
