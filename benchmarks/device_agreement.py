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

With the same seed on both backends the chains draw the same momenta and uniform numbers, and
HMC pulls paths that rounding separated back together, so the differences come out smaller than
independent fits' (standardised differences with a standard deviation of 0.24-0.41 at 200 and
1,000 groups, benchmarks/README.md): the check bounds a systematic difference by 4 MCSE but does
not test the MCSE itself. ``--seeds 0 1`` compares independent fits; with thousands of rows, and
every group's rows moving with the shared parameters' Monte Carlo error, a largest difference
near 4 MCSE then comes by chance (3.92 of 3,010 rows at 1,000 groups).

Without a GPU the script says so and exits 0. ``--backends cpu cpu --seeds 0 1`` compares two
CPU fits with different seeds, which exercises the comparison where no GPU is present.

Each backend can also fit in a process of its own, so that the CPU fit gets one JAX device per
core (parallel chains, as on a CPU-only machine) while the GPU fits beside it: ``--backends cpu
--save DIR`` writes each problem's summary and wall time to ``DIR``, and ``--compare DIR_A
DIR_B`` compares two such folders.

Run from the repository root::

    python benchmarks/device_agreement.py                    # CPU against GPU
    python benchmarks/device_agreement.py --backends cpu cpu --seeds 0 1
    JAX_PLATFORMS=cpu python benchmarks/device_agreement.py --backends cpu --save out/cpu &
    python benchmarks/device_agreement.py --backends gpu --save out/gpu; wait
    python benchmarks/device_agreement.py --compare out/cpu out/gpu

Exit status 1 when any row disagrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from speed import Problem, problem_for, timed_fit

import bayescale as bs

MCSE_LIMIT = 4.0
# Tables longer than this print only their rows with the largest differences.
MAX_ROWS = 30


def fit_on(
    backend: str, problem: Problem, seed: int, sampler: dict
) -> tuple[pd.DataFrame, float, str]:
    """Fit ``problem`` with ``backend``'s first device as JAX's default; summary, wall, device."""
    device = jax.devices(backend)[0]
    with jax.default_device(device):
        post, wall = timed_fit(problem, seed, **sampler)
        summary = post.summary()
    return summary, wall, str(device)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Per summary row: both means, their difference in units of the combined MCSE.

    Both summaries must have the same rows: a row on one side only would compare as NaN, which
    no limit rejects.
    """
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    if len(only_a) or len(only_b):
        raise ValueError(
            f"the summaries have different rows: only in a {list(only_a)}, only in b {list(only_b)}"
        )
    b = b.loc[a.index]
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


def problems(groups: list[int], grouped_mass: bool) -> list[Problem]:
    """The problems to fit: Chinchilla for 1 group, simulated groups otherwise."""
    # One group has no per-group parameters for the grouped mass matrix to couple.
    counts = [g for g in groups if not (g == 1 and grouped_mass)]
    return [problem_for(g) for g in counts]


def save(folder: Path, problem: Problem, fitted: tuple[pd.DataFrame, float, str]) -> None:
    """Write one fit's summary (CSV, full precision) and its wall time and device (JSON)."""
    summary, wall, device = fitted
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / f"{problem.groups}.csv")
    info = {"problem": problem.name, "wall_s": wall, "device": device, "jax": jax.__version__}
    (folder / f"{problem.groups}.json").write_text(json.dumps(info, indent=2))


def load(folder: Path) -> dict[int, tuple[pd.DataFrame, float, str, str]]:
    """Saved fits by group count: summary, wall time, device with jax version, problem name."""
    tables = sorted(folder.glob("*.csv"))
    if not tables:
        raise SystemExit(f"{folder}: no saved summary (*.csv); write them with --save")
    fits = {}
    for table in tables:
        if not table.stem.isdigit() or not table.with_suffix(".json").is_file():
            raise SystemExit(f"{table}: not a saved fit (GROUPS.csv beside GROUPS.json)")
        info = json.loads(table.with_suffix(".json").read_text())
        summary = pd.read_csv(table, index_col=0)
        device = f"{info['device']} (jax {info['jax']})"
        fits[int(table.stem)] = (summary, info["wall_s"], device, info["problem"])
    return fits


def report(
    name: str, a: tuple[pd.DataFrame, float, str], b: tuple[pd.DataFrame, float, str]
) -> int:
    """Print one problem's comparison; the number of rows that disagree."""
    (summary_a, wall_a, dev_a), (summary_b, wall_b, dev_b) = a, b
    table = compare(summary_a, summary_b)
    worst = table["difference / MCSE"].max()
    bad = table[table["difference / MCSE"] > MCSE_LIMIT]
    print(f"### {name}: a on {dev_a} in {wall_a:.1f} s, b on {dev_b} in {wall_b:.1f} s")
    print(f"\n{len(table)} rows, largest difference {worst:.2f} MCSE, {len(bad)} too large\n")
    if len(table) > MAX_ROWS:
        print(f"The {MAX_ROWS} rows with the largest differences:\n")
        table = table.nlargest(MAX_ROWS, "difference / MCSE")
    print(markdown(table))
    print()
    return len(bad)


def compare_saved(folder_a: Path, folder_b: Path) -> int:
    """Compare the fits saved in two folders, problem by problem; rows that disagree."""
    fits_a, fits_b = load(folder_a), load(folder_b)
    if fits_a.keys() != fits_b.keys():
        raise SystemExit(
            f"the folders hold different problems: {folder_a} {sorted(fits_a)} groups, "
            f"{folder_b} {sorted(fits_b)} groups"
        )
    shared = sorted(fits_a)
    print(f"## Backend agreement: {folder_a} (a) against {folder_b} (b)\n")
    print(f"- a row passes when |mean a - mean b| <= {MCSE_LIMIT} combined MCSE\n")
    failed = sum(report(fits_a[g][3], fits_a[g][:3], fits_b[g][:3]) for g in shared)
    print(f"rows above {MCSE_LIMIT} MCSE: {failed}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["cpu", "gpu"], metavar="BACKEND")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 0], metavar="SEED")
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 10])
    parser.add_argument(
        "--grouped-mass",
        action="store_true",
        help='dense_mass="groups" at every group count (the default from 200 groups)',
    )
    parser.add_argument("--save", type=Path, help="write each fit's summary here, compare nothing")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("DIR_A", "DIR_B"))
    args = parser.parse_args()
    if args.compare:
        return 1 if compare_saved(*args.compare) else 0
    if len(args.backends) != (1 if args.save else 2):
        parser.error("--backends takes two backends, or one with --save")
    sampler = {"dense_mass": "groups"} if args.grouped_mass else {}
    try:
        for backend in args.backends:
            jax.devices(backend)
    except RuntimeError as err:
        print(f"backend not available ({err}): nothing to compare.")
        return 0

    if args.save:
        for problem in problems(args.groups, args.grouped_mass):
            fitted = fit_on(args.backends[0], problem, args.seeds[0], sampler)
            save(args.save, problem, fitted)
            print(f"{problem.name}: {fitted[2]} in {fitted[1]:.1f} s, saved to {args.save}")
        return 0
    print(f"## Backend agreement: {args.backends[0]} (a) against {args.backends[1]} (b)\n")
    print(f"- jax {jax.__version__}, bayescale {bs.__version__}, seeds {args.seeds}")
    print(f"- sampler settings beyond the defaults: {sampler or 'none'}")
    print(f"- a row passes when |mean a - mean b| <= {MCSE_LIMIT} combined MCSE\n")
    failed = 0
    for problem in problems(args.groups, args.grouped_mass):
        a, b = (
            fit_on(backend, problem, seed, sampler)
            for backend, seed in zip(args.backends, args.seeds, strict=True)
        )
        failed += report(problem.name, a, b)
    print(f"rows above {MCSE_LIMIT} MCSE: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
