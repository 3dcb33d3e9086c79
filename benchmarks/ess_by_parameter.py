"""Benchmark: which parameters mix slowest in a fit of many groups.

Fits `speed.py`'s simulated problem (the Chinchilla law, 30 runs per group, E, A, B partially
pooled, Student-t noise) with bayescale's default sampler, then prints, per posterior site, the
smallest and median bulk ESS over its entries and its largest R-hat (ArviZ), and the mean
gradient evaluations per draw of each chain.

Run from the repository root::

    python benchmarks/ess_by_parameter.py 400
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import arviz as az
import numpy as np

import bayescale as bs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402


def main() -> None:
    """Fit, then print one row per site."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=int)
    args = parser.parse_args()
    problem = speed.simulated_problem(args.groups)
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=speed.NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=speed.SEED, progress_bar=False)
        wall = time.perf_counter() - start
    posterior = post.idata.posterior
    ess, rhat = az.ess(posterior), az.rhat(posterior)
    print(f"## {problem.name}: fit {wall:.1f} s, mass matrix {post.meta['sampler']['dense_mass']}")
    print("\n| site | entries | min bulk ESS | median bulk ESS | max R-hat |")
    print("|---|---:|---:|---:|---:|")
    for name in posterior.data_vars:
        values = ess[name].values.ravel()
        print(
            f"| {name} | {values.size} | {values.min():.0f} | {np.median(values):.0f} "
            f"| {rhat[name].values.max():.3f} |"
        )
    steps = post.idata.sample_stats["n_steps"].values.mean(axis=1)
    print(f"\ngradient evaluations per draw, by chain: {np.round(steps, 1).tolist()}")


if __name__ == "__main__":
    main()
