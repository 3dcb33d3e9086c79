"""Benchmark: float32 rounding of the Student-t log density summed over many runs, in nu.

For n runs of Normal noise (sd 0.015, numpy seed 0), the float32 sum of the Student-t log
density over the runs at 201 values of nu evenly spaced in [50, 50.01], minus the exact
(float64, SciPy) sum: its sd and range over the grid, for NumPyro's ``StudentT`` and for
bayescale's (`bayescale.noise.StudentT`), beside how much the exact sum itself changes over the
grid. An error that jumps by more than a few hundredths of a nat between neighbouring nu keeps
NUTS from reaching its target acceptance at any step size.

Run from the repository root::

    python benchmarks/student_t_rounding.py
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import scipy.stats

from bayescale.noise import StudentT

SCALE = 0.015
NUS = np.linspace(50.0, 50.01, 201)


def float32_sums(distribution: type, residuals: np.ndarray) -> np.ndarray:
    """Float32 sum of the log density over ``residuals``, at each nu of `NUS`."""
    values = jnp.asarray(residuals, dtype=jnp.float32)
    return np.array(
        [
            float(jnp.sum(distribution(jnp.float32(nu), 0.0, jnp.float32(SCALE)).log_prob(values)))
            for nu in NUS
        ]
    )


def main() -> None:
    """Print one row per number of runs and density."""
    rng = np.random.default_rng(0)
    print("| runs | density | error sd, nats | error range, nats | exact change, nats |")
    print("|---:|---|---:|---:|---:|")
    for runs in (3000, 12000, 30000):
        residuals = rng.normal(0.0, SCALE, runs)
        exact = np.array([scipy.stats.t.logpdf(residuals, df=nu, scale=SCALE).sum() for nu in NUS])
        for name, distribution in (("numpyro", dist.StudentT), ("bayescale", StudentT)):
            error = float32_sums(distribution, residuals) - exact
            print(
                f"| {runs} | {name} | {error.std():.4f} | {np.ptp(error):.4f} "
                f"| {np.ptp(exact):.4f} |"
            )


if __name__ == "__main__":
    main()
