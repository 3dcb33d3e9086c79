"""Benchmark: float32 rounding of a log density summed over many runs, as the runs grow.

Each run's log density near the posterior of speed.py's simulated groups (Normal-like noise of
sd 0.015 on log loss) is about log(1 / (0.015 sqrt(2 pi))) - z^2 / 2 = 3.28 - z^2 / 2 nats for
a standard Normal z. For n such values (numpy seed [0, n]), 40 times perturbed by 0.001 nats per
run (as a step of the sampler moves them), this prints the sum's size, the spacing of float32
numbers there, and the sd and range of the error of the float32 sum compiled by XLA on the
default device against the exact (float64) sum. That error moves pseudo-randomly with the
parameters, so it enters every energy difference NUTS accepts or rejects by.

Run from the repository root::

    python benchmarks/float32_sums.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

RUNS = (3000, 30000, 90000, 300000)
PERTURBATIONS = 40
TYPICAL_LOG_DENSITY = 3.28  # nats: log(1 / (0.015 sqrt(2 pi)))
STEP = 1e-3  # nats per run between evaluations


def main() -> None:
    """Print one row per number of runs."""
    total = jax.jit(jnp.sum)
    print(f"float32 sums on {jax.devices()[0].platform}, jax {jax.__version__}\n")
    print("| runs | sum, nats | float32 spacing there | error sd, nats | error range, nats |")
    print("|---:|---:|---:|---:|---:|")
    for runs in RUNS:
        rng = np.random.default_rng([0, runs])
        base = TYPICAL_LOG_DENSITY - 0.5 * rng.standard_normal(runs) ** 2
        errors = []
        for _ in range(PERTURBATIONS):
            values = (base + STEP * rng.standard_normal(runs)).astype(np.float32)
            exact = values.astype(np.float64).sum()
            errors.append(float(total(jnp.asarray(values))) - exact)
        spacing = np.spacing(np.float32(exact))
        print(
            f"| {runs} | {exact:.0f} | {spacing:.4f} | {np.std(errors):.4f} "
            f"| {np.ptp(errors):.4f} |"
        )


if __name__ == "__main__":
    main()
