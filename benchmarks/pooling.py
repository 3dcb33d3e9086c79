"""How often partially pooled fits fail their sampling checks, by number and size of groups.

For each design, ``--tables`` tables are simulated from a grouped power law in FLOPs,
``L_g = E_g + A_g (C / C_ref)^-alpha`` with ``C`` log-uniform over 1e17..1e21 FLOPs, ``E_g = 2
exp(s_E z)``, ``A_g = 0.5 exp(s_A z)`` (amplitude at the geometric-mean compute), ``alpha = 0.3
exp(0.3 z)`` shared, and lognormal noise of sd 0.02. Each design's tables are fitted together
with ``bs.fit_many`` under the default pooling (E and A partial, alpha shared) and lognormal
noise, at target acceptance 0.8 and at the default for partial pooling (0.95). The table counts
fits with any divergence and with any failed check, total divergences, the median and smallest
bulk ESS over all summary rows, and how often the true values (every group's E and A, in the
papers' convention, and alpha) fall in their 90% central intervals: a fit that diverges may
still be right, and this says whether it is. The near-equal design is also fitted with E and A
shared, the pooling that the divergence warning suggests for it.

Run from the repository root::

    python benchmarks/pooling.py                 # 10 tables per design, 2 chains x 500/500
    python benchmarks/pooling.py --tables 4      # smoke test

The script uses only the public API, so running it at an earlier revision measures that
revision's parametrisation the same way.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
import pandas as pd

import bayescale as bs

NEAR_EQUAL = "4 groups x 10 runs, near-equal groups"
SHARED = {"E": "shared", "A": "shared"}
# design name -> (groups, runs per group, between-group sd of log E, of log A)
DESIGNS = {
    "3 groups x 15 runs": (3, 15, 0.15, 0.4),
    "4 groups x 10 runs": (4, 10, 0.15, 0.4),
    "8 groups x 10 runs": (8, 10, 0.15, 0.4),
    NEAR_EQUAL: (4, 10, 0.01, 0.05),
}
SAMPLER = {"num_chains": 2, "num_warmup": 500, "num_samples": 500}
NOISE_SD = 0.02


def simulate(groups: int, runs: int, sd_e: float, sd_a: float, rng: np.random.Generator):
    """One table of ``groups x runs`` runs (flops, task, loss) and its true E, A, alpha.

    The true A is in the papers' convention (``L = E + A C^-alpha``), as fits report it.
    """
    flops = 10 ** rng.uniform(17.0, 21.0, groups * runs)
    codes = np.repeat(np.arange(groups), runs)
    e = 2.0 * np.exp(sd_e * rng.standard_normal(groups))
    a = 0.5 * np.exp(sd_a * rng.standard_normal(groups))
    alpha = 0.3 * np.exp(0.3 * rng.standard_normal())
    x = np.log(flops) - np.log(flops).mean()
    mean = e[codes] + a[codes] * np.exp(-alpha * x)
    loss = mean * np.exp(NOISE_SD * rng.standard_normal(groups * runs))
    table = pd.DataFrame({"flops": flops, "task": [f"t{c}" for c in codes], "loss": loss})
    truth = {"E": e, "A": a * np.exp(alpha * np.log(flops).mean()), "alpha": np.array([alpha])}
    return table, truth


def coverage(post: bs.Posterior, truth: dict[str, np.ndarray], prob: float = 0.9) -> list[bool]:
    """Whether each true value (every group's E and A, and alpha) is in its central interval."""
    inside = []
    for name, values in truth.items():
        draws = post.idata.posterior[name].values.reshape(-1, *post.idata.posterior[name].shape[2:])
        draws = draws.reshape(len(draws), -1)  # (draws, groups), one column when shared
        low, high = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        inside.extend(((low <= values) & (values <= high)).tolist())
    return inside


def measure(
    tables: list[pd.DataFrame],
    truths: list[dict[str, np.ndarray]],
    target_accept: float,
    pooling: dict[str, str] | None = None,
) -> dict[str, float]:
    """Fit all tables at once; count failed fits and divergences; check 90% intervals."""
    model = bs.ScalingModel("power", group="task", noise="lognormal", pooling=pooling)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        posts = bs.fit_many(model, tables, seed=0, target_accept_prob=target_accept, **SAMPLER)
    wall = time.perf_counter() - start
    divergences = [p.diagnostics.num_divergent for p in posts]
    ess = [float(p.diagnostics.table["ess_bulk"].min()) for p in posts]
    inside = [v for p, truth in zip(posts, truths, strict=True) for v in coverage(p, truth)]
    return {
        "wall s": wall,
        "fits with divergences": sum(d > 0 for d in divergences),
        "divergences": sum(divergences),
        "fits failing any check": sum(not p.diagnostics.ok for p in posts),
        "median min bulk ESS": float(np.median(ess)),
        "min bulk ESS": min(ess),
        "true values in 90% intervals %": 100 * float(np.mean(inside)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=10, help="tables per design")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"## Partial pooling: {args.tables} tables per design, {SAMPLER}\n")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs")
    print(f"- bayescale {bs.__version__}\n")
    rows = []
    for name, design in DESIGNS.items():
        rng = np.random.default_rng(args.seed)
        tables, truths = zip(*(simulate(*design, rng) for _ in range(args.tables)), strict=True)
        runs = [(0.8, None), (0.95, None)]
        if name == NEAR_EQUAL:
            runs.append((0.8, SHARED))  # the cure the divergence warning names
        for target_accept, pooling in runs:
            result = measure(list(tables), list(truths), target_accept, pooling)
            label = "E, A shared" if pooling else "default"
            rows.append(
                {"design": name, "pooling": label, "target accept": target_accept, **result}
            )
            print(
                f"- {name}, {label}, target accept {target_accept}: wall {result['wall s']:.1f} s",
                flush=True,
            )
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [
            f"{v:.1f}" if isinstance(v, float) and k != "target accept" else str(v)
            for k, v in row.items()
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
