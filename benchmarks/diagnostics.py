"""Benchmark: a fit's diagnostics table, `arviz.summary` against `bayescale.convergence`.

Every fit computes R-hat, bulk and tail ESS and the MCSE of the mean and sd of every parameter
(`Posterior.diagnostics`). Draws here are AR(1) chains with coefficients from -0.5 to 0.95,
4 chains x 1000 draws, for the parameter counts of the Chinchilla law at 100, 1,000 and 10,000
groups (3 per group plus 10 shared). Each row times `arviz.summary(kind="diagnostics")` and
`bayescale.convergence.diagnostics_table` on the same draws, one after the other, and gives the
largest relative difference of any number between them.

Run from the repository root::

    python benchmarks/diagnostics.py                    # 310, 3010, 30010 parameters
    python benchmarks/diagnostics.py --parameters 310   # quick
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import arviz as az
import numpy as np
import xarray as xr
from chinchilla_fit import environment

from bayescale.convergence import diagnostics_table

CHAINS, DRAWS = 4, 1000


def draws(parameters: int, seed: int = 0) -> xr.Dataset:
    """AR(1) chains, one coefficient per parameter, as one posterior variable."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-0.5, 0.95, parameters)
    noise = rng.normal(size=(CHAINS, DRAWS, parameters))
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, DRAWS):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return xr.Dataset({"theta": (("chain", "draw", "parameter"), x)})


def timed(function, *args):
    """Return ``function(*args)`` and its wall time in seconds."""
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parameters", nargs="+", type=int, default=[310, 3010, 30010])
    args = parser.parse_args()
    print(f"## Diagnostics table: {CHAINS} chains x {DRAWS} draws\n")
    print(environment(CHAINS))
    print(f"- threads for bayescale's blocks: {os.cpu_count()}\n")
    print("| parameters | arviz.summary s | bayescale s | ratio | largest relative difference |")
    print("|---:|---:|---:|---:|---:|")
    for parameters in args.parameters:
        posterior = draws(parameters)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected, arviz_wall = timed(
                lambda p: az.summary(p, kind="diagnostics", round_to="none"), posterior
            )
        got, ours_wall = timed(diagnostics_table, posterior)
        expected_values = expected.to_numpy()
        difference = np.nanmax(np.abs(got.to_numpy() - expected_values) / np.abs(expected_values))
        print(
            f"| {parameters} | {arviz_wall:.2f} | {ours_wall:.2f} | {arviz_wall / ours_wall:.1f} "
            f"| {difference:.1e} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
