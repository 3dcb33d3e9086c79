"""Benchmark: how NUTS's step size and tree depth change with the number of groups.

Fits ``speed.py``'s simulated groups (30 runs each, Chinchilla law, Student-t noise) with the
default sampler (4 chains x 1000 / 1000, seed 0) and prints per chain: the adapted step size,
the mean leapfrog steps (gradient evaluations) per draw after warmup, and how many draws ended
at each tree depth. HMC's step size must shrink about as d^(-1/4) in d dimensions to keep its
acceptance rate, and NUTS's trajectories grow in doublings, so the steps per draw jump by 2x
where step size times trajectory steps crosses the length the posterior needs. Wall times
include compilation: the persistent compilation cache is off. With ``JAX_ENABLE_X64=1`` the fit
runs in float64 throughout.

Run from the repository root::

    python benchmarks/step_sizes.py --groups 10 100 1000
"""

from __future__ import annotations

import argparse
import os

import jax
import numpy as np
from speed import simulated_problem, timed_fit

import bayescale as bs
from bayescale.inference import CACHE_ENV


def fit_stats(groups: int) -> list[dict]:
    """One row per chain of a default fit to ``groups`` simulated groups."""
    post, wall = timed_fit(simulated_problem(groups), seed=0)
    stats = post.idata.sample_stats
    r_hat = float(post.summary()["r_hat"].max())
    rows = []
    for chain in range(stats.sizes["chain"]):
        depths = stats["tree_depth"].values[chain]
        rows.append(
            {
                "groups": groups,
                "wall s": wall,
                "max R-hat": r_hat,
                "chain": chain,
                "step size": float(stats["step_size"].values[chain, 0]),
                "steps/draw": float(stats["n_steps"].values[chain].mean()),
                "draws by tree depth": ", ".join(
                    f"{depth}: {count}" for depth, count in enumerate(np.bincount(depths)) if count
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", type=int, default=[10, 100, 1000])
    args = parser.parse_args()
    os.environ[CACHE_ENV] = ""  # an empty value turns the cache off
    print(f"## NUTS step size and tree depth against groups ({jax.devices()[0].platform})\n")
    print(
        f"- jax {jax.__version__}, bayescale {bs.__version__}, float64:"
        f" {jax.config.jax_enable_x64}, seed 0, default sampler\n"
    )
    print("| groups | wall s | max R-hat | chain | step size | steps/draw | draws by tree depth |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for groups in args.groups:
        for row in fit_stats(groups):
            print(
                f"| {row['groups']} | {row['wall s']:.1f} | {row['max R-hat']:.3f} | {row['chain']}"
                f" | {row['step size']:.4f} | {row['steps/draw']:.1f} |"
                f" {row['draws by tree depth']} |"
            )


if __name__ == "__main__":
    main()
