"""Calibration of forecasts that extrapolate: do 90% intervals hold 90% of the large runs?

Simulated families of runs. Each family has G = 4 tasks whose loss falls with training compute C
as ``L_g(C) = E_g + A_g (C / C0)^-alpha``, with C0 = 1e17 FLOPs, the smallest training scale:

* ``alpha`` is shared by the tasks of a family and drawn per family from U(0.1, 0.35);
* ``E_g = E_c exp(0.15 z_g)`` with ``E_c ~ U(1.5, 2.5)`` nats per family (15% spread between
  tasks);
* ``A_g = E_c exp(0.3 z'_g)``: the reducible loss at the smallest scale is comparable to E.

Training runs: 8 compute scales log-spaced over 1e17 .. 1e19 FLOPs, 2 seeds each, so 16 runs per
task and 64 per family. Each run's loss is its law times ``exp(s eps)``, ``eps ~ Normal(0, 1)``,
with ``s`` the family's seed-to-seed sd of log loss, drawn from U(0.01, 0.02), except for outliers
(each run with probability 5%) whose ``s`` is 4 times larger. This is not the Student-t noise
bayescale fits by default: the noise model is misspecified, as on real data. Held-out "large
runs": per task, one run (one seed, the same noise process) at 1e20, 1e21 and 1e22 FLOPs, that is
1, 2 and 3 decades beyond the largest training scale; 12 per family.

Methods, each giving a predictive distribution, as samples, for every held-out run:

* bayescale pooled: ``bs.ScalingModel("power", x="flops", group="task")`` with its defaults (E
  and A partially pooled across tasks, alpha shared, Student-t noise with shared sigma and nu).
  All families are fitted in one ``bs.fit_many`` call; the samples are
  ``bs.predictive_draws(post, at, kind="predictive")``, which include a new run's noise.
* bayescale independent: the same with E, A and alpha estimated separately per task
  (``pooling="independent"``), sigma and nu still shared.
* approach 3 + bootstrap: what is usually done today. Per task, Hoffmann et al. (2022) approach
  3: minimise the Huber loss (delta = 1e-3) of ``log L_pred - log L_obs`` over ``(log E, log A,
  alpha)`` with scipy's L-BFGS-B (alpha >= 0; the loss is divided by delta so that the default
  tolerances apply), on ``x = log(C / C0)``. Starts: the loss is evaluated on a grid of 125
  points (log E and log A in -1 .. 1 by 0.5, alpha in 0.05, 0.1, 0.2, 0.4, 0.8), L-BFGS-B runs
  from the 3 best, and the best result is kept. The point forecast is the fit to all 16 runs of
  the task. Intervals: the task's runs are resampled with replacement B = 200 times and refitted
  the same way; the samples are the refits' predictions. This bootstrap gives the spread of the
  fitted mean curve only, not the noise of a new run: that is the common practice.

Metrics over held-out runs, per method and per distance (1, 2, 3 decades ahead, and all):

* coverage: fraction of observed held-out losses inside the central 50/80/90/95% interval of the
  samples (equal-tailed sample quantiles). Its binomial standard error ``sqrt(p (1 - p) / n)``
  for n runs treats the runs as independent, but the runs of one family share its truth and its
  fit; "SE of cover 90%" is the standard error from the spread between families instead (sd of
  the families' coverages / sqrt(families)).
* CRPS: ``mean|X - y| - 0.5 mean|X - X'|`` over the samples X (the CRPS of their empirical
  distribution), in 1e-3 loss units; lower is better, and it rewards sharp intervals that cover.
* ARE: mean ``|forecast - y| / y`` in %, the forecast being the predictive median for bayescale
  and the full-data fit for approach 3.

Fits that fail bayescale's sampling checks (R-hat, ESS, divergences, tree depth) are kept in the
metrics and counted in the output. Wall times include compilation.

Run from the repository root::

    python benchmarks/calibration.py                  # R = 100 families, B = 200
    python benchmarks/calibration.py --quick          # smoke test only: 6 families, B = 30
    python benchmarks/calibration.py --families 50 --bootstrap 100 --seed 1

The coverage against nominal level goes to ``benchmarks/out/calibration.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
import warnings
from pathlib import Path

# scipy's L-BFGS-B calls BLAS on 3-vectors; threaded OpenBLAS makes each call tens of times
# slower on a busy machine. Set before numpy and scipy load OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy  # noqa: E402
import scipy.optimize  # noqa: E402
from chinchilla_fit import load_average, source_version  # noqa: E402

import bayescale as bs  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"

# -- simulation design -----------------------------------------------------------------------

TASKS = ("t0", "t1", "t2", "t3")
C0 = 1e17  # FLOPs: smallest training scale, where A is the reducible loss
TRAIN_FLOPS = np.logspace(17.0, 19.0, 8)
SEEDS = 2  # training runs per scale and task
DECADES = (1, 2, 3)  # held-out runs at 10**d times the largest training scale
ALPHA_RANGE = (0.1, 0.35)
E_RANGE = (1.5, 2.5)  # nats
E_SPREAD = 0.15  # sd of log E between tasks
A_SPREAD = 0.3  # sd of log(A / E_c) between tasks
SIGMA_RANGE = (0.01, 0.02)  # seed-to-seed sd of log loss
OUTLIER_RATE = 0.05
OUTLIER_SCALE = 4.0

# -- methods and metrics ---------------------------------------------------------------------

INDEPENDENT = {
    "E": "independent",
    "A": "independent",
    "alpha": "independent",
    "sigma": "shared",
    "nu": "shared",
}
HUBER_DELTA = 1e-3
GRID = np.stack(
    np.meshgrid(
        np.linspace(-1.0, 1.0, 5),  # log E
        np.linspace(-1.0, 1.0, 5),  # log A
        np.array([0.05, 0.1, 0.2, 0.4, 0.8]),  # alpha
        indexing="ij",
    ),
    axis=-1,
).reshape(-1, 3)
NUM_STARTS = 3
BOUNDS = [(None, None), (None, None), (0.0, None)]
LEVELS = tuple(k / 20 for k in range(1, 20))  # nominal levels of the figure
TABLE_LEVELS = (0.5, 0.8, 0.9, 0.95)


@dataclasses.dataclass(frozen=True)
class Family:
    """One simulated family: training runs and held-out large runs (columns flops, task, loss)."""

    train: pd.DataFrame
    held_out: pd.DataFrame  # also ``decades`` beyond the largest training scale


@dataclasses.dataclass(frozen=True)
class Forecasts:
    """One method's forecasts of every family's held-out runs."""

    method: str
    samples: list[np.ndarray]  # per family, (samples, held-out runs), loss
    point: list[np.ndarray]  # per family, (held-out runs,), loss
    wall_s: float
    note: str


def simulate_family(rng: np.random.Generator) -> Family:
    """Draw one family's laws and noise, then its training and held-out runs."""
    alpha = rng.uniform(*ALPHA_RANGE)
    e_centre = rng.uniform(*E_RANGE)
    e = e_centre * np.exp(E_SPREAD * rng.standard_normal(len(TASKS)))
    a = e_centre * np.exp(A_SPREAD * rng.standard_normal(len(TASKS)))
    sigma = rng.uniform(*SIGMA_RANGE)

    def runs(flops: np.ndarray) -> pd.DataFrame:
        codes = np.repeat(np.arange(len(TASKS)), len(flops))
        scale = np.tile(flops, len(TASKS))
        mean = e[codes] + a[codes] * (scale / C0) ** -alpha
        sd = sigma * np.where(rng.random(mean.size) < OUTLIER_RATE, OUTLIER_SCALE, 1.0)
        loss = mean * np.exp(sd * rng.standard_normal(mean.size))
        return pd.DataFrame({"flops": scale, "task": np.array(TASKS)[codes], "loss": loss})

    held_flops = TRAIN_FLOPS[-1] * 10.0 ** np.array(DECADES)
    held_out = runs(held_flops).assign(decades=np.tile(DECADES, len(TASKS)))
    return Family(train=runs(np.repeat(TRAIN_FLOPS, SEEDS)), held_out=held_out)


# -- bayescale -------------------------------------------------------------------------------


def run_bayescale(
    method: str,
    model: bs.ScalingModel,
    families: list[Family],
    sampler: dict[str, int],
    seed: int,
) -> Forecasts:
    """Fit every family in one ``fit_many`` call; predictive draws at the held-out runs."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Failed checks are counted below; the per-fit warning text would only repeat them.
        warnings.simplefilter("ignore", bs.SamplingWarning)
        posteriors = bs.fit_many(model, [f.train for f in families], seed=seed, **sampler)
        samples = [
            bs.predictive_draws(post, f.held_out[["flops", "task"]], seed=seed + i)
            for i, (post, f) in enumerate(zip(posteriors, families, strict=True))
        ]
    wall = time.perf_counter() - start
    failed = sum(not post.diagnostics.ok for post in posteriors)
    divergent = sum(post.diagnostics.num_divergent > 0 for post in posteriors)
    rhat = sum(post.diagnostics.table["r_hat"].max() > 1.01 for post in posteriors)
    note = (
        f"{failed} of {len(families)} families fail bayescale's sampling checks "
        f"({divergent} with divergences, {rhat} with R-hat > 1.01); all are kept"
    )
    return Forecasts(method, samples, [np.median(s, axis=0) for s in samples], wall, note)


# -- approach 3 + bootstrap ------------------------------------------------------------------


def huber(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals ``r`` (log loss) and its derivative, both divided by delta."""
    slope = np.minimum(np.maximum(r / HUBER_DELTA, -1.0), 1.0)
    return slope * (r - 0.5 * HUBER_DELTA * slope), slope


def log_law(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``log(E + A exp(-alpha x))`` for ``theta = (log E, log A, alpha)``, ``x = log(C / C0)``."""
    return np.logaddexp(theta[..., 0:1], theta[..., 1:2] - theta[..., 2:3] * x)


def objective(theta: np.ndarray, x: np.ndarray, log_y: np.ndarray) -> tuple[float, np.ndarray]:
    """Approach 3's loss of ``theta`` on runs at ``x`` with log losses ``log_y``, and gradient."""
    term = theta[1] - theta[2] * x
    log_pred = np.logaddexp(theta[0], term)
    value, slope = huber(log_pred - log_y)
    weight = slope * np.exp(term - log_pred)  # d loss / d log A, per run
    total, on_a = slope.sum(), weight.sum()
    return float(value.sum()), np.array([total - on_a, on_a, -(weight @ x)])


def fit_approach3(x: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Best ``(log E, log A, alpha)`` of L-BFGS-B runs from the best grid points."""
    grid_loss = huber(log_law(GRID, x) - log_y)[0].sum(axis=1)
    best = None
    for start in GRID[np.argsort(grid_loss)[:NUM_STARTS]]:
        result = scipy.optimize.minimize(
            objective, start, args=(x, log_y), jac=True, method="L-BFGS-B", bounds=BOUNDS
        )
        if best is None or result.fun < best.fun:
            best = result
    return best.x


def run_approach3(families: list[Family], num_boot: int, rng: np.random.Generator) -> Forecasts:
    """Per family and task: the full-data fit and ``num_boot`` bootstrap refits."""
    start = time.perf_counter()
    samples, points = [], []
    for family in families:
        held = family.held_out
        sample = np.empty((num_boot, len(held)))
        point = np.empty(len(held))
        for task in TASKS:
            runs = family.train[family.train["task"] == task]
            x = np.log(runs["flops"].to_numpy() / C0)
            log_y = np.log(runs["loss"].to_numpy())
            mask = (held["task"] == task).to_numpy()
            x_held = np.log(held.loc[mask, "flops"].to_numpy() / C0)
            point[mask] = np.exp(log_law(fit_approach3(x, log_y), x_held))
            for b, idx in enumerate(rng.integers(0, len(x), size=(num_boot, len(x)))):
                sample[b, mask] = np.exp(log_law(fit_approach3(x[idx], log_y[idx]), x_held))
        samples.append(sample)
        points.append(point)
    note = f"B = {num_boot} bootstrap refits per task; intervals cover the mean curve only"
    return Forecasts("approach 3 + bootstrap", samples, points, time.perf_counter() - start, note)


# -- metrics ---------------------------------------------------------------------------------


def coverage(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether each ``y`` lies in the central interval of its samples, shape (runs, LEVELS)."""
    levels = np.asarray(LEVELS)
    q = np.quantile(samples, np.concatenate([(1 - levels) / 2, (1 + levels) / 2]), axis=0)
    lower, upper = q[: len(levels)], q[len(levels) :]
    return ((lower <= y) & (y <= upper)).T


def crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the samples' empirical distribution at each ``y``, in loss units."""
    n = samples.shape[0]
    ordered = np.sort(samples, axis=0)
    weights = (2 * np.arange(1, n + 1) - n - 1)[:, None]
    spread = 2 * np.sum(weights * ordered, axis=0) / n**2  # mean |X - X'| over all pairs
    return np.mean(np.abs(samples - y), axis=0) - 0.5 * spread


@dataclasses.dataclass(frozen=True)
class Scores:
    """Per held-out run of all families: coverage, CRPS and absolute relative error."""

    family: np.ndarray
    decades: np.ndarray
    covered: np.ndarray  # (runs, LEVELS)
    crps: np.ndarray
    are: np.ndarray

    def at(self, decades: int | str) -> np.ndarray:
        """Mask of the held-out runs ``decades`` beyond the training range, or of all ("all")."""
        return np.full(self.decades.shape, True) if decades == "all" else self.decades == decades


def score(forecasts: Forecasts, families: list[Family]) -> Scores:
    """Score one method's forecasts against the observed held-out losses."""
    parts = []
    for i, (samples, point, family) in enumerate(
        zip(forecasts.samples, forecasts.point, families, strict=True)
    ):
        y = family.held_out["loss"].to_numpy()
        parts.append(
            (
                np.full(len(y), i),
                family.held_out["decades"].to_numpy(),
                coverage(samples, y),
                crps(samples, y),
                np.abs(point - y) / y,
            )
        )
    return Scores(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def rows(forecasts: Forecasts, scores: Scores) -> list[str]:
    """Markdown table lines of one method: per distance, then all held-out runs."""
    lines = []
    for decades in (*DECADES, "all"):
        keep = scores.at(decades)
        covered = scores.covered[keep].mean(axis=0)
        at_90 = scores.covered[keep, LEVELS.index(0.9)]
        runs = np.bincount(scores.family[keep])
        per_family = np.bincount(scores.family[keep], weights=at_90)[runs > 0] / runs[runs > 0]
        cells = [
            forecasts.method,
            str(decades),
            *(f"{100 * covered[LEVELS.index(p)]:.1f}" for p in TABLE_LEVELS),
            f"{100 * per_family.std(ddof=1) / np.sqrt(per_family.size):.1f}",
            f"{1e3 * scores.crps[keep].mean():.2f}",
            f"{100 * scores.are[keep].mean():.2f}",
            str(int(keep.sum())),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def plot(results: list[tuple[Forecasts, Scores]], path: Path) -> None:
    """Coverage against nominal level per method, one panel per distance and one for all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (*DECADES, "all")
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharey=True)
    for ax, decades in zip(axes, panels, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        for forecasts, scores in results:
            keep = scores.at(decades)
            ax.plot(LEVELS, scores.covered[keep].mean(axis=0), marker=".", label=forecasts.method)
        ax.set_title(
            "all held-out runs" if decades == "all" else f"{decades} decade(s) ahead", fontsize=10
        )
        ax.set_xlabel("nominal level of central interval")
        ax.set(xlim=(0, 1), ylim=(0, 1))
    axes[0].set_ylabel("fraction of held-out runs inside")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def environment(sampler: dict[str, int], num_families: int, num_boot: int) -> list[str]:
    """Machine, versions, design and settings, as markdown bullet lines."""
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "bayescale": f"{bs.__version__} (git {source_version()})",
    }
    return [
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"JAX devices: {jax.devices()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- families: {num_families}, each {len(TASKS)} tasks x {len(TRAIN_FLOPS)} scales "
        f"(1e17 .. 1e19 FLOPs) x {SEEDS} seeds; held out per task: 1 run at "
        + ", ".join(f"{TRAIN_FLOPS[-1] * 10.0**d:.0e}" for d in DECADES)
        + " FLOPs",
        f"- truth: alpha ~ U{ALPHA_RANGE}, E_c ~ U{E_RANGE}, E sd(log) {E_SPREAD}, A / E_c "
        f"sd(log) {A_SPREAD}; noise sd(log) ~ U{SIGMA_RANGE}, x{OUTLIER_SCALE:g} for "
        f"{100 * OUTLIER_RATE:g}% outliers",
        f"- bayescale sampler per fit: {sampler}, batched with bs.fit_many; approach 3: "
        f"Huber delta {HUBER_DELTA:g}, L-BFGS-B from the {NUM_STARTS} best of {len(GRID)} grid "
        f"points, B = {num_boot} bootstrap refits",
        f"- load average at start (1, 5, 15 min): {load_average()}",
    ]


def standard_errors(counts: dict[str, int]) -> str:
    """Binomial standard error of a coverage at each table level, in points, per run count."""
    parts = []
    for label, n in counts.items():
        errors = ", ".join(f"{100 * np.sqrt(p * (1 - p) / n):.1f} at {p:.0%}" for p in TABLE_LEVELS)
        parts.append(f"{label} (n = {n}): {errors}")
    return (
        "binomial standard error of a coverage, sqrt(p(1-p)/n), in points: "
        + "; ".join(parts)
        + ". It treats the runs as independent; those of one family share its truth and fit, "
        "so 'SE of cover 90%' gives the standard error from the spread between families "
        "(sd of each family's coverage / sqrt(families))."
    )


def main(argv: list[str] | None = None) -> int:
    """Parse flags, simulate, run the three methods, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 6 families, 200/200 draws, B = 30"
    )
    parser.add_argument("--families", type=int, default=None, help="R (default 100)")
    parser.add_argument("--bootstrap", type=int, default=None, help="B (default 200)")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=None, help="default 500")
    parser.add_argument("--samples", type=int, default=None, help="default 500")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    num_families = args.families or (6 if args.quick else 100)
    num_boot = args.bootstrap or (30 if args.quick else 200)
    draws = 200 if args.quick else 500
    sampler = {
        "num_chains": args.chains,
        "num_warmup": args.warmup or draws,
        "num_samples": args.samples or draws,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    print(f"## Calibration of extrapolated forecasts: R={num_families} families\n")
    print("\n".join(environment(sampler, num_families, num_boot)), flush=True)
    simulation, bootstrap = np.random.SeedSequence(args.seed).spawn(2)
    rng = np.random.default_rng(simulation)
    families = [simulate_family(rng) for _ in range(num_families)]
    all_forecasts = [
        run_bayescale(
            "bayescale pooled",
            bs.ScalingModel("power", x="flops", group="task"),
            families,
            sampler,
            args.seed,
        ),
        run_bayescale(
            "bayescale independent",
            bs.ScalingModel("power", x="flops", group="task", pooling=INDEPENDENT),
            families,
            sampler,
            args.seed,
        ),
        run_approach3(families, num_boot, np.random.default_rng(bootstrap)),
    ]
    for forecasts in all_forecasts:
        print(f"- {forecasts.method}: wall {forecasts.wall_s:.1f} s; {forecasts.note}")
    results = [(f, score(f, families)) for f in all_forecasts]
    path = OUT / "calibration.png"
    plot(results, path)
    print(
        f"- coverage against nominal level: {path.name}\n\n"
        "| method | decades ahead | cover 50% | cover 80% | cover 90% | cover 95% | "
        "SE of cover 90% | CRPS x1e3 | ARE % | held-out runs |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for forecasts, scores in results:
        print("\n".join(rows(forecasts, scores)))
    per_distance = len(TASKS) * num_families
    print(
        "\n" + standard_errors({"per distance": per_distance, "all": per_distance * len(DECADES)})
    )
    print(f"total wall time: {time.perf_counter() - start:.1f} s")
    print(f"load average at end (1, 5, 15 min): {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
