"""Benchmark: many groups, by mass matrix and noise.

The simulated problems of ``speed.py`` (the Chinchilla law, 30 runs per group, E, A, B partially
pooled, alpha and beta shared), fitted by bayescale with its default sampler (4 chains x 1000 /
1000, Laplace warmup) and each mass matrix asked for: ``dense_mass=True`` (dense) or
``"groups"`` (each group coupled with the shared parameters only, `bayescale.mass`); with
Student-t noise (the default) or lognormal noise. Each fit compiles from scratch (an empty
persistent cache). Columns as in ``speed.py``'s table 1.

Run from the repository root::

    python benchmarks/many_groups.py --groups 100 400 --mass dense groups --noise lognormal
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import bayescale as bs
from bayescale.inference import CACHE_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chinchilla_fit as cf  # noqa: E402
import speed  # noqa: E402

MASS = {"dense": True, "groups": "groups"}


def fit_row(groups: int, mass: str, noise: str) -> speed.Row:
    """Time one fit of the simulated problem with ``groups`` groups."""
    problem = speed.simulated_problem(groups)
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=noise)
    with warnings.catch_warnings():
        # Failed diagnostics show in the table; the warning text would only repeat them.
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=speed.SEED, progress_bar=False, dense_mass=MASS[mass])
        wall = time.perf_counter() - start
    posterior, stats = post.idata.posterior, post.idata.sample_stats
    draws = {k: posterior[k].values for k in speed.LAW_PARAMS}
    return speed.summarise(
        problem,
        f"{mass}, {noise}",
        wall,
        draws,
        stats["n_steps"].values,
        stats["diverging"].values,
    )


def main() -> None:
    """Print the environment, then one row per (groups, noise, mass) as it ends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", type=int, default=[100, 400])
    parser.add_argument("--mass", nargs="+", choices=list(MASS), default=list(MASS))
    parser.add_argument(
        "--noise", nargs="+", choices=["student_t", "lognormal"], default=["lognormal"]
    )
    args = parser.parse_args()
    config = bs.ScalingModel.default_sampler_config
    with tempfile.TemporaryDirectory(prefix="bayescale-bench-cache-") as cache:
        # An empty persistent cache; no two fits here share a compiled program.
        os.environ[CACHE_ENV] = cache
        print(f"## Many groups: Chinchilla law, {config['num_chains']} chains\n")
        print(cf.environment(config["num_chains"]) + "\n")
        print(speed.HEADER.replace("| sampler |", "| mass, noise |"), flush=True)
        for groups in args.groups:
            for noise in args.noise:
                for mass in args.mass:
                    print(fit_row(groups, mass, noise).markdown(), flush=True)
    print(f"\nload average at end (1, 5, 15 min): {cf.load_average()}")


if __name__ == "__main__":
    main()
