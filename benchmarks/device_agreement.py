"""Check: the same fit on two JAX backends gives the same posterior within Monte Carlo error.

Fits the same model, data, seed and sampler settings with JAX's default device set to each
backend in turn (by default the CPU, then the GPU) and compares every summary row (law and
noise parameters, every group's values, population centres and spreads): the two posterior means
must agree within 4 Monte Carlo standard errors, ``|mean_a - mean_b| <= 4 sqrt(mcse_a^2 +
mcse_b^2)``. Different backends round differently, so the chains part ways after a few steps and
the draws differ; the posterior must not. Problems: the 240 Chinchilla runs (one group) and
simulated groups of 30 runs (``speed.py``'s design; 10 by default, ``--groups`` for others),
Student-t noise, the default sampler.

``--grouped-mass`` fits with ``dense_mass="groups"`` at every group count (the default from
200 groups), to compare that sampler on problems small enough for both backends.

Without a GPU the script says so and exits 0. ``--backends cpu cpu --seeds 0 1`` compares two
CPU fits with different seeds, which exercises the comparison where no GPU is present.

Run from the repository root::

    python benchmarks/device_agreement.py                    # CPU against GPU
    python benchmarks/device_agreement.py --backends cpu cpu --seeds 0 1

Exit status 1 when any row disagrees.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import jax
import numpy as np
import pandas as pd
from speed import NOISE, Problem, chinchilla_problem, simulated_problem

import bayescale as bs

MCSE_LIMIT = 4.0
# Tables longer than this print only their rows with the largest differences.
MAX_ROWS = 30


def fit_on(
    backend: str, problem: Problem, seed: int, sampler: dict
) -> tuple[pd.DataFrame, float, str]:
    """Fit ``problem`` with ``backend``'s first device as JAX's default; summary, wall, device."""
    device = jax.devices(backend)[0]
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=NOISE)
    with jax.default_device(device), warnings.catch_warnings():
        # Failed checks are reported through the summary's R-hat and ESS columns.
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=seed, progress_bar=False, **sampler)
        wall = time.perf_counter() - start
        summary = post.summary()
    return summary, wall, str(device)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per summary row: both means, their difference in units of the combined MCSE."""
    combined = np.hypot(a["mcse_mean"], b["mcse_mean"])
    return pd.DataFrame(
        {
            "mean a": a["mean"],
            "mean b": b["mean"],
            "difference / MCSE": (a["mean"] - b["mean"]).abs() / combined,
            "max R-hat": np.maximum(a["r_hat"], b["r_hat"]),
        }
    )


def markdown(table: pd.DataFrame) -> str:
    """The table as markdown, numbers to 4 significant digits."""
    lines = ["| row | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * table.shape[1]]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.4g}" for v in row) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs=2, default=["cpu", "gpu"], metavar=("A", "B"))
    parser.add_argument("--seeds", nargs=2, type=int, default=[0, 0], metavar=("A", "B"))
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 10])
    parser.add_argument(
        "--grouped-mass",
        action="store_true",
        help='dense_mass="groups" at every group count (the default from 200 groups)',
    )
    args = parser.parse_args()
    sampler = {"dense_mass": "groups"} if args.grouped_mass else {}
    try:
        for backend in args.backends:
            jax.devices(backend)
    except RuntimeError as err:
        print(f"backend not available ({err}): nothing to compare.")
        return 0

    print(f"## Backend agreement: {args.backends[0]} (a) against {args.backends[1]} (b)\n")
    print(f"- jax {jax.__version__}, bayescale {bs.__version__}, seeds {args.seeds}")
    print(f"- sampler settings beyond the defaults: {sampler or 'none'}")
    print(f"- a row passes when |mean a - mean b| <= {MCSE_LIMIT} combined MCSE\n")
    failed = 0
    for groups in args.groups:
        if groups == 1 and args.grouped_mass:
            continue  # one group has no per-group parameters to couple
        problem = chinchilla_problem() if groups == 1 else simulated_problem(groups)
        (a, wall_a, dev_a), (b, wall_b, dev_b) = (
            fit_on(backend, problem, seed, sampler)
            for backend, seed in zip(args.backends, args.seeds, strict=True)
        )
        table = compare(a, b)
        worst = table["difference / MCSE"].max()
        bad = table[table["difference / MCSE"] > MCSE_LIMIT]
        failed += len(bad)
        print(f"### {problem.name}: a on {dev_a} in {wall_a:.1f} s, b on {dev_b} in {wall_b:.1f} s")
        print(f"\n{len(table)} rows, largest difference {worst:.2f} MCSE, {len(bad)} too large\n")
        if len(table) > MAX_ROWS:
            print(f"The {MAX_ROWS} rows with the largest differences:\n")
            table = table.nlargest(MAX_ROWS, "difference / MCSE")
        print(markdown(table))
        print()
    print(f"rows above {MCSE_LIMIT} MCSE: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
