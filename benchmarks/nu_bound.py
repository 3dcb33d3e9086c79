"""Why the Student-t degrees of freedom have a lower bound: independent fits with nu > 0, 1, 2.

The calibration benchmark's families (``calibration.py``: 4 tasks x 16 runs each, held-out runs
1-3 decades beyond the largest training run) are fitted with E, A and alpha independent per
task, sigma and nu shared, as its "bayescale independent" method, once for each lower bound of
nu: ``nu = bound + exp(u)`` with ``log(nu - bound) ~ Normal(log(10 - bound), 1)``, so the prior
median stays 10 (bound 0 is the earlier default, 1 the current one). Each bound runs in its own
process: the bound is part of the noise model, which a process compiles once.

Per bound the script prints the fits that fail bayescale's checks, the smallest nu drawn, the
families whose CRPS is not finite (predictive draws that overflow), the mean and median CRPS of
the predictive draws at the held-out runs, and the families with the largest CRPS, with each
chain's median of nu and sigma and the fit's largest R-hat: a stuck chain shows as two chains
that disagree.

Run from the repository root::

    python benchmarks/nu_bound.py                      # bounds 0 1 2, 100 families, seed 0
    python benchmarks/nu_bound.py --bounds 1 --families 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
import warnings

import numpy as np
from calibration import INDEPENDENT, crps, simulate_family

import bayescale as bs
from bayescale import noise

SAMPLER = {"num_chains": 2, "num_warmup": 500, "num_samples": 500}
PRIOR_MEDIAN = 10.0
WORST = 3


def use_bound(bound: float) -> None:
    """Make ``bound`` the lower bound of nu for this process, the prior median kept at 10."""
    nu = noise.NOISE_PARAMS["student_t"]["nu"]
    prior = bs.Prior(math.log(PRIOR_MEDIAN - bound), nu.prior.scale)
    noise.NOISE_PARAMS["student_t"]["nu"] = dataclasses.replace(nu, lower=bound, prior=prior)


def one_bound(bound: float, num_families: int, seed: int) -> dict:
    """Fit every family with nu > ``bound``; scores and the worst families, JSON-ready."""
    use_bound(bound)
    simulation = np.random.SeedSequence(seed).spawn(2)[0]  # as calibration.py draws families
    rng = np.random.default_rng(simulation)
    families = [simulate_family(rng) for _ in range(num_families)]
    model = bs.ScalingModel("power", x="flops", group="task", pooling=INDEPENDENT)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        posteriors = bs.fit_many(model, [f.train for f in families], seed=seed, **SAMPLER)
        scores = np.array(
            [
                np.mean(
                    crps(
                        bs.predictive_draws(post, f.held_out[["flops", "task"]], seed=seed + i),
                        f.held_out["loss"].to_numpy(),
                    )
                )
                for i, (post, f) in enumerate(zip(posteriors, families, strict=True))
            ]
        )
    worst = []
    # A family whose predictive draws overflow has a NaN CRPS: it counts as the worst.
    for i in np.argsort(-np.nan_to_num(scores, nan=np.inf))[:WORST]:
        draws = posteriors[i].idata.posterior
        worst.append(
            {
                "family": int(i),
                "crps": float(scores[i]),
                "nu": draws["nu"].median("draw").values.tolist(),
                "sigma": draws["sigma"].median("draw").values.tolist(),
                "r_hat": float(posteriors[i].diagnostics.table["r_hat"].max()),
            }
        )
    return {
        "bound": bound,
        "wall_s": time.perf_counter() - start,
        "failing": sum(not post.diagnostics.ok for post in posteriors),
        "nu_min": float(min(post.idata.posterior["nu"].min() for post in posteriors)),
        "non_finite": int(np.sum(~np.isfinite(scores))),
        "mean_crps": float(np.mean(scores)),
        "median_crps": float(np.median(scores)),
        "worst": worst,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bounds", nargs="+", type=float, default=[0.0, 1.0, 2.0])
    parser.add_argument("--families", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one-bound", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_bound is not None:  # the child process of one bound
        print(json.dumps(one_bound(args.one_bound, args.families, args.seed)))
        return 0
    if any(not 0 <= b < PRIOR_MEDIAN for b in args.bounds):
        parser.error(f"--bounds must lie in [0, {PRIOR_MEDIAN:g}) (the prior median of nu)")

    print(f"## Lower bound of nu: {args.families} calibration families, independent fits\n")
    print(f"- bayescale {bs.__version__}, sampler per fit {SAMPLER}, seed {args.seed}")
    print(f"- prior: log(nu - bound) ~ Normal(log({PRIOR_MEDIAN:g} - bound), 1)\n")
    print(
        "| nu > | wall s | fits failing checks | smallest nu drawn | families with CRPS not "
        "finite | mean CRPS x1e3 | median CRPS x1e3 | worst families: CRPS x1e3 (chain medians "
        "of nu; of sigma; max R-hat) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for bound in args.bounds:
        command = [sys.executable, __file__, "--one-bound", str(bound)]
        command += ["--families", str(args.families), "--seed", str(args.seed)]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        worst = "; ".join(
            f"{w['family']}: {1e3 * w['crps']:.1f} ({', '.join(f'{v:.3g}' for v in w['nu'])}; "
            f"{', '.join(f'{v:.3g}' for v in w['sigma'])}; {w['r_hat']:.2f})"
            for w in r["worst"]
        )
        print(
            f"| {bound:g} | {r['wall_s']:.1f} | {r['failing']} of {args.families} | "
            f"{r['nu_min']:.3g} | {r['non_finite']} | {1e3 * r['mean_crps']:.2f} | "
            f"{1e3 * r['median_crps']:.2f} | {worst} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
