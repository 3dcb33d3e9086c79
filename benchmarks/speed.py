"""Benchmark: bayescale, textbook NumPyro, PyMC and nutpie on the same models and data.

Table 1, sampler speed. The Chinchilla law L = E + A N^-alpha + B D^-beta with Student-t noise
on log loss, fitted by four samplers in one process, on three problems:

* "1 group": the 240 Chinchilla runs kept by Besiroglu et al. (2024).
* "10 groups", "100 groups": simulated, 30 runs per group, group column "task". Generated (fixed
  numpy seed) with shared alpha = 0.34 and beta = 0.28; per group E_g = 1.8 exp(0.2 z),
  A_g = 400 exp(0.2 z), B_g = 600 exp(0.2 z) with independent standard normal z; N log-uniform
  on 1e7..3e9, D log-uniform on 1e9..1e11; loss = L(N, D) exp(0.015 z) (lognormal noise):
  losses of 1.9 to 5.6 nats at 10 groups, 1.9 to 7.2 at 100.

Samplers, each with the same chains, warmup and draws (default 4 x 1000 / 1000), seed 0, and
chains in parallel (the script gives XLA one CPU device per chain, as the bayescale CLI does;
PyMC runs one process per core, nutpie one thread per chain):

* bayescale: ``ScalingModel("chinchilla", group=None or "task", noise="student_t").fit(df)``
  with its default sampler (dense mass matrix, standardised parameters, default pooling: E, A, B
  partially pooled, alpha and beta shared). Its persistent compilation cache
  (``$BAYESCALE_CACHE_DIR``) points at a fresh, empty temporary directory, so each problem
  compiles from scratch.
* bayescale-standard: the same with ``warmup="standard"`` (NumPyro's adaptation from the
  identity instead of the default Laplace start), to show what the warmup scheme alone changes.
* textbook NumPyro: the model as usually written, on raw log N and log D: for one group
  ``benchmarks/chinchilla_fit.py``'s ``textbook_model`` (log E, log A, log B ~ Normal(0, 5)); for
  several, per group log E_g, log A_g, log B_g = mu + tau z_g (non-centred) with
  mu ~ Normal(0, 5), tau ~ HalfNormal(1), z_g ~ Normal(0, 1); alpha, beta, sigma ~ HalfNormal(1),
  nu ~ Gamma(2, 0.1). ``NUTS(model)`` with NumPyro's defaults (diagonal mass matrix) and the chain
  method bayescale picks.
* PyMC: the same textbook model in PyMC, ``pm.sample`` with its own NUTS and default cores.
  The timed call builds the model and samples. PyTensor's on-disk cache of compiled C modules is
  left as it is (the header says how full it was at the start).
* nutpie: the same PyMC model, ``nutpie.compile_pymc_model`` (numba backend) and
  ``nutpie.sample``; the timed call builds, compiles and samples. Skipped when nutpie is not
  installed, PyMC and nutpie both when PyMC is not.

Columns: wall time of the whole call, compilation included; min bulk and tail ESS (ArviZ) over
the law parameters: E, A, B, alpha, beta for one group, and for groups the shared alpha, beta and
every group's E_g, A_g, B_g (not the population mu and tau); ESS/s (min bulk ESS / wall s);
gradient evaluations per draw (mean leapfrog steps after warmup); divergences after warmup; max
R-hat over the same parameters; posterior medians of alpha and beta, to check the fits agree.
Then how wall time grows from the smallest to the largest simulated problem (10 to 100 groups),
and bayescale's ESS/s against the best other sampler per problem.

Table 2, many fits at once: ``bs.fit_many(ScalingModel("power", noise="lognormal"), tables)``
(2 chains x 500 / 500) on 1, 10, 100, 1000 simulated tables of 30 runs each, L = 2 + 0.5 (C /
1e19)^-0.3 with C (column flops) log-uniform on 1e17..1e21 and lognormal noise sd 0.02 (losses
about 2.1 to 5.2), the design of ``sbc.py``'s power law. Each size
compiles anew (the batch shape differs). For comparison, ``model.fit`` one table after another
on the first 10 tables, with the same sampler settings.

Run from the repository root::

    python benchmarks/speed.py                   # full run, every sampler on every problem
    python benchmarks/speed.py --max-groups numpyro=10 pymc=10   # as measured below
    python benchmarks/speed.py --quick           # smoke test: 2 chains x 50 / 50, 1 and 10 groups
    python benchmarks/speed.py --samplers bayescale numpyro --groups 10 100 --tables 1 10 100
    python benchmarks/speed.py --samplers bayescale --groups 10000 --tables --progress
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import MCMC, NUTS

import bayescale as bs
from bayescale.inference import CACHE_ENV, chain_method

# One XLA CPU device per chain, as the bayescale CLI asks for, so that the JAX samplers run their
# chains in parallel like PyMC and nutpie do (fit_many runs its batch on one device either way).
numpyro.set_host_device_count(max(4, os.cpu_count() or 1))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import chinchilla_fit as cf  # noqa: E402

try:
    import pymc as pm
except ImportError:
    pm = None
try:
    import nutpie
except ImportError:
    nutpie = None

LAW_PARAMS = ["E", "A", "B", "alpha", "beta"]
AMPLITUDES = ("E", "A", "B")
NOISE = "student_t"
GROUP = "task"
SEED = 0
RUNS_PER_GROUP = 30
# Generating values of the simulated grouped problems (see the module docstring).
TRUE_ALPHA, TRUE_BETA = 0.34, 0.28
TRUE_CENTRES = {"E": 1.8, "A": 400.0, "B": 600.0}
TRUE_GROUP_SD = 0.2
TRUE_NOISE_SD = 0.015
# Table 2: the power law and its sampler settings.
POWER_RUNS = 30
POWER_NOISE_SD = 0.02
MANY_SAMPLER = {"num_chains": 2, "num_warmup": 500, "num_samples": 500}
# --quick: warmup and draws of both tables, chains of table 1. A smoke test, not a benchmark.
QUICK_DRAWS, QUICK_CHAINS = 50, 2
SAMPLERS = ("bayescale", "bayescale-standard", "numpyro", "pymc", "nutpie")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A table of runs to fit, with the arrays the textbook models read."""

    name: str
    frame: pd.DataFrame
    groups: int

    @property
    def group(self) -> str | None:
        """bayescale's group column, None for one group."""
        return GROUP if self.groups > 1 else None

    def arrays(self) -> dict[str, np.ndarray]:
        """Raw log N, log D, log loss, and group codes when there are groups."""
        out = {
            "log_n": np.log(self.frame["params"].to_numpy()),
            "log_d": np.log(self.frame["tokens"].to_numpy()),
            "log_loss": np.log(self.frame["loss"].to_numpy()),
        }
        if self.groups > 1:
            out["group"] = pd.factorize(self.frame[GROUP])[0]
        return out


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the sampler speed table."""

    problem: str
    sampler: str
    wall_s: float
    ess_bulk: float
    ess_tail: float
    steps_per_draw: float
    divergences: int
    rhat_max: float
    alpha: float
    beta: float

    @property
    def ess_per_s(self) -> float:
        """Min bulk ESS per second of wall time."""
        return self.ess_bulk / self.wall_s

    def markdown(self) -> str:
        """The row as a markdown table line."""
        cells = [
            self.problem,
            self.sampler,
            f"{self.wall_s:.1f}",
            f"{self.ess_bulk:.0f}",
            f"{self.ess_tail:.0f}",
            f"{self.ess_per_s:.2f}",
            f"{self.steps_per_draw:.1f}",
            str(self.divergences),
            f"{self.rhat_max:.3f}",
            f"{self.alpha:.3f} / {self.beta:.3f}",
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = (
    "| problem | sampler | wall s | min bulk ESS | min tail ESS | ESS/s | grad evals/draw "
    "| divergences | max R-hat | alpha / beta (median) |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def summarise(
    problem: Problem,
    sampler: str,
    wall_s: float,
    draws: dict[str, np.ndarray],
    num_steps: np.ndarray,
    diverging: np.ndarray,
) -> Row:
    """Summarise (chain, draw[, group]) draws of the law parameters and NUTS statistics."""
    return Row(
        problem=problem.name,
        sampler=sampler,
        wall_s=wall_s,
        **cf.worst_convergence(draws, LAW_PARAMS),
        steps_per_draw=float(np.mean(num_steps)),
        divergences=int(np.sum(diverging)),
        alpha=float(np.median(draws["alpha"])),
        beta=float(np.median(draws["beta"])),
    )


def from_logs(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """E, A, B from the textbook models' log_E, log_A, log_B; alpha and beta as they are."""
    out = {k: np.exp(np.asarray(samples[f"log_{k}"])) for k in AMPLITUDES}
    return {**out, "alpha": np.asarray(samples["alpha"]), "beta": np.asarray(samples["beta"])}


# -- problems -------------------------------------------------------------------------------


def chinchilla_problem() -> Problem:
    """The 240 Chinchilla runs, one group."""
    return Problem("1 group", cf.load_data(), 1)


def problem_for(groups: int) -> Problem:
    """The Chinchilla runs for 1 group, `simulated_problem` otherwise."""
    return chinchilla_problem() if groups == 1 else simulated_problem(groups)


def simulated_problem(groups: int) -> Problem:
    """``groups`` groups of 30 runs of the Chinchilla law, values per the module docstring."""
    rng = np.random.default_rng([SEED, groups])
    values = {
        k: centre * np.exp(TRUE_GROUP_SD * rng.standard_normal(groups))
        for k, centre in TRUE_CENTRES.items()
    }
    codes = np.repeat(np.arange(groups), RUNS_PER_GROUP)
    n = np.exp(rng.uniform(np.log(1e7), np.log(3e9), codes.size))
    d = np.exp(rng.uniform(np.log(1e9), np.log(1e11), codes.size))
    mean = (
        values["E"][codes]
        + values["A"][codes] * n**-TRUE_ALPHA
        + values["B"][codes] * d**-TRUE_BETA
    )
    loss = mean * np.exp(TRUE_NOISE_SD * rng.standard_normal(codes.size))
    labels = np.array([f"t{g:03d}" for g in range(groups)])
    frame = pd.DataFrame({"params": n, "tokens": d, "loss": loss, GROUP: labels[codes]})
    return Problem(f"{groups} groups", frame, groups)


# -- samplers -------------------------------------------------------------------------------


def timed_fit(problem: Problem, seed: int = SEED, **sampler) -> tuple[bs.Posterior, float]:
    """One `ScalingModel.fit` of ``problem`` and its wall time (s), everything it does included.

    Failed sampling checks do not warn: the tables show them in their R-hat and ESS columns.
    """
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=seed, **{"progress_bar": False, **sampler})
        return post, time.perf_counter() - start


def run_bayescale(problem: Problem, sampler: dict, warmup: str = "laplace") -> Row:
    """Time one `ScalingModel.fit`, everything it does included."""
    post, wall = timed_fit(problem, warmup=warmup, **sampler)
    posterior, stats = post.idata.posterior, post.idata.sample_stats
    draws = {k: posterior[k].values for k in LAW_PARAMS}
    name = "bayescale" if warmup == "laplace" else f"bayescale-{warmup}"
    return summarise(problem, name, wall, draws, stats["n_steps"].values, stats["diverging"].values)


def run_bayescale_standard(problem: Problem, sampler: dict) -> Row:
    """`run_bayescale` with NumPyro's warmup (``warmup="standard"``) instead of the default."""
    return run_bayescale(problem, sampler, warmup="standard")


def hierarchical_model(log_n, log_d, group, num_groups: int, log_loss=None) -> None:
    """Textbook grouped Chinchilla law: non-centred log E, log A, log B per group."""
    per_run = {}
    for name in AMPLITUDES:
        mu = numpyro.sample(f"mu_{name}", dist.Normal(0.0, 5.0))
        tau = numpyro.sample(f"tau_{name}", dist.HalfNormal(1.0))
        with numpyro.plate("groups", num_groups):
            z = numpyro.sample(f"z_{name}", dist.Normal(0.0, 1.0))
        per_run[name] = numpyro.deterministic(f"log_{name}", mu + tau * z)[group]
    alpha = numpyro.sample("alpha", dist.HalfNormal(1.0))
    beta = numpyro.sample("beta", dist.HalfNormal(1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
    mean = (
        jnp.exp(per_run["E"])
        + jnp.exp(per_run["A"] - alpha * log_n)
        + jnp.exp(per_run["B"] - beta * log_d)
    )
    with numpyro.plate("runs", log_n.shape[0]):
        numpyro.sample("log_loss", dist.StudentT(nu, jnp.log(mean), sigma), obs=log_loss)


def run_numpyro(problem: Problem, sampler: dict) -> Row:
    """Time default NUTS on the textbook model in a fresh MCMC object."""
    data = {k: jnp.asarray(v) for k, v in problem.arrays().items()}
    if problem.groups > 1:
        model, data = hierarchical_model, {**data, "num_groups": problem.groups}
    else:
        model, data = cf.textbook_model, {**data, "noise": NOISE}
    num_chains = sampler["num_chains"]
    start = time.perf_counter()
    mcmc = MCMC(
        NUTS(model),
        num_warmup=sampler["num_warmup"],
        num_samples=sampler["num_samples"],
        num_chains=num_chains,
        chain_method=chain_method(num_chains),
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(SEED), **data, extra_fields=("num_steps", "diverging"))
    samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
    wall = time.perf_counter() - start
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return summarise(
        problem,
        "textbook NumPyro",
        wall,
        from_logs(samples),
        np.asarray(extra["num_steps"]),
        np.asarray(extra["diverging"]),
    )


def pymc_model(problem: Problem) -> pm.Model:
    """The textbook model (as `hierarchical_model`, or plain for one group) in PyMC."""
    data = problem.arrays()
    with pm.Model() as model:
        if problem.groups > 1:
            per_run = {}
            for name in AMPLITUDES:
                mu = pm.Normal(f"mu_{name}", 0.0, 5.0)
                tau = pm.HalfNormal(f"tau_{name}", 1.0)
                z = pm.Normal(f"z_{name}", 0.0, 1.0, shape=problem.groups)
                per_run[name] = pm.Deterministic(f"log_{name}", mu + tau * z)[data["group"]]
        else:
            per_run = {name: pm.Normal(f"log_{name}", 0.0, 5.0) for name in AMPLITUDES}
        alpha = pm.HalfNormal("alpha", 1.0)
        beta = pm.HalfNormal("beta", 1.0)
        sigma = pm.HalfNormal("sigma", 1.0)
        nu = pm.Gamma("nu", alpha=2.0, beta=0.1)
        mean = (
            pm.math.exp(per_run["E"])
            + pm.math.exp(per_run["A"] - alpha * data["log_n"])
            + pm.math.exp(per_run["B"] - beta * data["log_d"])
        )
        pm.StudentT("log_loss", nu=nu, mu=pm.math.log(mean), sigma=sigma, observed=data["log_loss"])
    return model


def from_idata(problem: Problem, sampler: str, wall: float, idata: az.InferenceData) -> Row:
    """Summarise a PyMC or nutpie trace (post-warmup ``posterior`` and ``sample_stats``)."""
    samples = {k: idata.posterior[k].values for k in ("log_E", "log_A", "log_B", "alpha", "beta")}
    stats = idata.sample_stats
    return summarise(
        problem,
        sampler,
        wall,
        from_logs(samples),
        stats["n_steps"].values,
        stats["diverging"].values,
    )


def run_pymc(problem: Problem, sampler: dict) -> Row:
    """Time building the PyMC model and ``pm.sample`` with PyMC's NUTS."""
    start = time.perf_counter()
    idata = pm.sample(
        draws=sampler["num_samples"],
        tune=sampler["num_warmup"],
        chains=sampler["num_chains"],
        random_seed=SEED,
        progressbar=False,
        compute_convergence_checks=False,
        model=pymc_model(problem),
    )
    return from_idata(problem, "PyMC", time.perf_counter() - start, idata)


def run_nutpie(problem: Problem, sampler: dict) -> Row:
    """Time building the PyMC model, compiling it for nutpie and sampling."""
    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(pymc_model(problem))
    idata = nutpie.sample(
        compiled,
        draws=sampler["num_samples"],
        tune=sampler["num_warmup"],
        chains=sampler["num_chains"],
        seed=SEED,
        progress_bar=False,
    )
    return from_idata(problem, "nutpie", time.perf_counter() - start, idata)


RUNNERS: dict[str, Callable[[Problem, dict], Row]] = {
    "bayescale": run_bayescale,
    "bayescale-standard": run_bayescale_standard,
    "numpyro": run_numpyro,
    "pymc": run_pymc,
    "nutpie": run_nutpie,
}


def available(samplers: Sequence[str]) -> list[str]:
    """The requested samplers whose libraries import, with a note for each one skipped."""
    missing = {"pymc": pm is None, "nutpie": pm is None or nutpie is None}
    for name in samplers:
        if missing.get(name):
            print(f"{name} not installed: skipped", flush=True)
    return [name for name in samplers if not missing.get(name)]


def speed_rows(
    problems: Sequence[Problem], samplers: Sequence[str], sampler: dict, max_groups: dict
) -> Iterator[Row]:
    """Every sampler on every problem it is run on, each row as soon as it is done."""
    for problem in problems:
        for name in samplers:
            if problem.groups <= max_groups.get(name, problem.groups):
                yield RUNNERS[name](problem, sampler)
            else:
                print(f"| {problem.name} | {name} | not run (--max-groups) |", flush=True)


def growth_table(rows: Sequence[Row], groups: Sequence[int]) -> str:
    """Wall time at the smallest and largest simulated problem, per sampler, and their ratio."""
    if len(groups) < 2:
        return "(wall-time growth needs two simulated problems: pass two or more --groups)"
    small, large = f"{min(groups)} groups", f"{max(groups)} groups"
    wall = {(r.problem, r.sampler): r.wall_s for r in rows}
    lines = [
        f"| sampler | wall s, {small} | wall s, {large} | wall({max(groups)}) / "
        f"wall({min(groups)}) |",
        "|---|---:|---:|---:|",
    ]
    for sampler in dict.fromkeys(r.sampler for r in rows):
        a, b = wall.get((small, sampler)), wall.get((large, sampler))
        if a is not None and b is not None:
            lines.append(f"| {sampler} | {a:.1f} | {b:.1f} | {b / a:.1f} |")
    return "\n".join(lines)


def ratio_table(rows: Sequence[Row]) -> str:
    """Per problem, bayescale's ESS/s against the best of the other samplers."""
    lines = [
        "| problem | bayescale ESS/s | best other sampler | its ESS/s | bayescale / best other |",
        "|---|---:|---|---:|---:|",
    ]
    for problem in dict.fromkeys(r.problem for r in rows):
        ours = [r for r in rows if r.problem == problem and r.sampler == "bayescale"]
        others = [r for r in rows if r.problem == problem and not r.sampler.startswith("bayescale")]
        if not ours or not others:
            continue
        best = max(others, key=lambda r: np.nan_to_num(r.ess_per_s, nan=-np.inf))
        lines.append(
            f"| {problem} | {ours[0].ess_per_s:.2f} | {best.sampler} | {best.ess_per_s:.2f} | "
            f"{ours[0].ess_per_s / best.ess_per_s:.1f} |"
        )
    if len(lines) == 2:
        return "(the ESS/s comparison needs bayescale and another sampler: see --samplers)"
    return "\n".join(lines)


# -- many fits at once ----------------------------------------------------------------------


def power_table(rng: np.random.Generator) -> pd.DataFrame:
    """30 runs of L = 2 + 0.5 (C / 1e19)^-0.3, C log-uniform on 1e17..1e21, noise sd 0.02."""
    flops = np.exp(rng.uniform(np.log(1e17), np.log(1e21), POWER_RUNS))
    noise = np.exp(POWER_NOISE_SD * rng.standard_normal(POWER_RUNS))
    return pd.DataFrame({"flops": flops, "loss": (2.0 + 0.5 * (flops / 1e19) ** -0.3) * noise})


def many_rows(sizes: Sequence[int], sequential: int, sampler: dict) -> Iterator[str]:
    """``fit_many`` on each number of tables, then ``model.fit`` one table after another."""
    model = bs.ScalingModel("power", noise="lognormal")
    rng = np.random.default_rng(SEED)
    tables = [power_table(rng) for _ in range(max([*sizes, sequential]))]

    def row(method: str, fits: Callable[[], list[bs.Posterior]]) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.SamplingWarning)
            start = time.perf_counter()
            posteriors = fits()
            wall = time.perf_counter() - start
        failing = sum(not post.diagnostics.ok for post in posteriors)
        n = len(posteriors)
        return f"| {method} | {n} | {wall:.1f} | {wall / n:.2f} | {failing} |"

    for size in sizes:
        yield row(
            "fit_many", functools.partial(bs.fit_many, model, tables[:size], seed=SEED, **sampler)
        )
    if sequential:
        yield row(
            "model.fit, one after another",
            lambda: [
                model.fit(t, seed=SEED, progress_bar=False, **sampler) for t in tables[:sequential]
            ],
        )


MANY_HEADER = (
    "| method | fits | wall s | s per fit | fits failing checks |\n|---|---:|---:|---:|---:|"
)


# -- driver ---------------------------------------------------------------------------------


def other_versions() -> str:
    """PyMC, PyTensor and nutpie versions and PyTensor's compile cache, as a markdown line."""
    if pm is None:
        return "- pymc: not installed"
    import pytensor

    compiledir = Path(pytensor.config.compiledir)
    cached = len(list(compiledir.iterdir())) if compiledir.is_dir() else 0
    nutpie_version = nutpie.__version__ if nutpie is not None else "not installed"
    return (
        f"- other samplers: pymc {pm.__version__}, pytensor {pytensor.__version__}, nutpie "
        f"{nutpie_version}; pytensor compiledir {compiledir} ({cached} entries at start)"
    )


def parse_args() -> argparse.Namespace:
    """Command-line flags; sizes left unset take the full or ``--quick`` defaults."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 2 chains x 50/50, small sizes"
    )
    parser.add_argument("--chains", type=int, help="table 1 chains (default: bayescale's)")
    parser.add_argument(
        "--draws", type=int, help="table 1 warmup and draws, each (default: bayescale's)"
    )
    parser.add_argument(
        "--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS), help="table 1 samplers"
    )
    parser.add_argument(
        "--groups", nargs="*", type=int, help="simulated group counts (default 10 100; quick 10)"
    )
    parser.add_argument(
        "--tables",
        nargs="*",
        type=int,
        help="fit_many sizes (default 1 10 100 1000; quick 1 10); none skips table 2",
    )
    parser.add_argument(
        "--sequential", type=int, help="tables fitted one by one (default 10; quick 2)"
    )
    parser.add_argument(
        "--many-only", action="store_true", help="skip table 1: only the many-fits table"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show bayescale's progress bar in table 1 (on stderr): where a long fit stands",
    )
    parser.add_argument(
        "--max-groups",
        nargs="*",
        default=[],
        metavar="SAMPLER=G",
        help="run SAMPLER only on problems of at most G groups, e.g. pymc=10",
    )
    args = parser.parse_args()
    if args.groups and min(args.groups) < 2:
        parser.error("--groups are simulated group counts, each at least 2")
    if args.groups is None:
        args.groups = [10] if args.quick else [10, 100]
    if args.tables is None:
        args.tables = [1, 10] if args.quick else [1, 10, 100, 1000]
    if args.sequential is None:
        args.sequential = 2 if args.quick else 10
    return args


def sampler_settings(args: argparse.Namespace) -> tuple[dict, dict]:
    """Sampler settings of table 1 (bayescale's defaults) and table 2, as the flags ask."""
    defaults = bs.ScalingModel.default_sampler_config
    table1 = {k: defaults[k] for k in ("num_warmup", "num_samples", "num_chains")}
    table2 = dict(MANY_SAMPLER)
    if args.quick:
        quick = {"num_warmup": QUICK_DRAWS, "num_samples": QUICK_DRAWS}
        table1 = {**quick, "num_chains": QUICK_CHAINS}
        table2.update(quick)
    if args.draws:
        table1.update(num_warmup=args.draws, num_samples=args.draws)
    if args.chains:
        table1["num_chains"] = args.chains
    if args.progress:
        table1["progress_bar"] = True
    return table1, table2


def quiet_pymc() -> None:
    """Silence PyMC's and PyTensor's log messages (sampler settings, compile notes)."""
    for name in ("pymc", "pytensor", "nutpie"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The textbook model has no matrix products, so a missing BLAS does not slow it.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")


def main() -> None:
    """Parse flags, print the environment, then both tables, each row as it ends."""
    args = parse_args()
    quiet_pymc()
    sampler, many = sampler_settings(args)
    with tempfile.TemporaryDirectory(prefix="bayescale-bench-cache-") as cache:
        # An empty persistent cache, so that bayescale compiles each shape from scratch.
        os.environ[CACHE_ENV] = cache
        cf.warm_up_jax()
        print(f"## Sampler speed: Chinchilla law, {NOISE} noise, {sampler}\n")
        print(cf.environment(sampler["num_chains"]))
        print(other_versions() + "\n", flush=True)

        if not args.many_only:
            samplers = available(args.samplers)
            problems = [chinchilla_problem(), *(simulated_problem(g) for g in args.groups)]
            print(f"### Sampler speed ({', '.join(p.name for p in problems)})\n")
            print(HEADER, flush=True)
            rows = []
            max_groups = {k: int(v) for k, v in (item.split("=") for item in args.max_groups)}
            for row in speed_rows(problems, samplers, sampler, max_groups):
                rows.append(row)
                print(row.markdown(), flush=True)
            print("\n### Wall time as groups grow\n")
            print(growth_table(rows, args.groups))
            print("\n### ESS/s: bayescale against the best other sampler\n")
            print(ratio_table(rows), flush=True)

        if args.tables or args.sequential:
            print(f"\n### Many fits at once: power law, {POWER_RUNS} runs per table, {many}\n")
            print(MANY_HEADER, flush=True)
            for line in many_rows(args.tables, args.sequential, many):
                print(line, flush=True)
        print(f"\nload average at end (1, 5, 15 min): {cf.load_average()}")


if __name__ == "__main__":
    main()
