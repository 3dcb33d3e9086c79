"""Simulation-based calibration (Talts et al. 2018) of bayescale's built-in laws.

For each configuration (law, pooling) the script fixes a design of scales, then for each of R
replicates draws every parameter from the prior *exactly as the model defines it*, simulates a
table of log losses with the configuration's noise (lognormal, or Student-t with ``nu`` drawn
from its default prior, ``nu - 1`` LogNormal), and fits all R tables with one ``bs.fit_many``
call. If prior, likelihood and sampler agree, the rank of each true parameter among ``L`` roughly
independent posterior draws is uniform on ``0..L``; a chi-square test over 10 bins checks that,
one parameter at a time.

Priors. The default priors of the response-unit parameters (``E``, ``A``, ``B``) are centred on
the geometric-mean response of the fitted table, so they depend on the data and a plain SBC
would be wrong. Every configuration here therefore passes explicit, absolute priors (``PRIORS``)
for those, and for the exponents and the noise sd realistic, fairly informative ones so that
simulated tables look like real scaling data. SBC is valid for any proper prior, as long as the
simulation and the fit use the same one.

Reference convention. Amplitudes are sampled at the reference scale (geometric mean of each
scale column of the table). The design is fixed across replicates, so the reference is too: the
script draws ``A_ref`` from its prior, simulates with ``law.predict`` on ``x = log(scale /
reference)``, and converts the true values to the papers' convention with ``ModelSpec.to_paper``
to rank them among the draws in ``post.idata.posterior`` (papers' convention). Ranks of any
function of the parameters are uniform under a calibrated posterior, so either convention works.

Partial pooling. Every partially pooled parameter has group values ``log value_g ~ Normal(log
value_mu, tau)`` with ``tau ~ HalfNormal(group_sd)``. Offsets, amplitudes and exponents sample
their group values directly (centred form) in a linear or reciprocal coordinate, noise
parameters sample ``z_g`` (non-centred form); both are reparametrisations of the same prior,
which ``draw_truth`` draws from directly.

Run from the repository root::

    python benchmarks/sbc.py                  # all configurations, R = 200
    python benchmarks/sbc.py --quick          # R = 50
    python benchmarks/sbc.py --configs power chinchilla --replicates 100
    python benchmarks/sbc.py --configs power --warmup laplace  # the Laplace warmup of fit

Rank histograms go to ``benchmarks/out/sbc_<config>.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import subprocess
import time
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import scipy.stats

import bayescale as bs
from bayescale.inference import BATCHED_WARMUP, WARMUPS
from bayescale.model import ModelSpec
from bayescale.noise import NU
from bayescale.noise import draw as draw_noise

OUT = Path(__file__).resolve().parent / "out"
SAMPLER = {"num_warmup": 500, "num_samples": 500, "num_chains": 2}
NUM_RANK_DRAWS = 99  # L: ranks take L + 1 = 100 values, 10 per bin
NUM_BINS = 10
NOISE = "lognormal"
GROUP = "task"

# Absolute priors (Normal on the log of each parameter). E and the amplitudes at the reference
# scale must be fixed: their defaults move with the data's typical loss.
PRIORS = {
    "E": bs.Prior.lognormal(2.0, 0.3),
    "A": bs.Prior.lognormal(0.5, 0.5),
    "B": bs.Prior.lognormal(0.5, 0.5),
    "alpha": bs.Prior.lognormal(0.3, 0.3),
    "beta": bs.Prior.lognormal(0.3, 0.3),
    "sigma": bs.Prior.lognormal(0.02, 0.5),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """One SBC configuration: a law, a design and a pooling."""

    name: str
    law: str
    description: str
    grouped: bool = False
    pooling: Mapping[str, str] | None = None
    noise: str = NOISE


CONFIGS = {
    c.name: c
    for c in (
        Config("power", "power", "power, 30 runs, one group"),
        Config("chinchilla", "chinchilla", "chinchilla, 40 runs, one group"),
        Config(
            "power_partial",
            "power",
            "power, 4 tasks x 10 runs, E and A partial (default)",
            grouped=True,
        ),
        Config(
            "power_indep_E",
            "power",
            "power, 4 tasks x 10 runs, E independent, A shared",
            grouped=True,
            pooling={"E": "independent", "A": "shared"},
        ),
        Config(
            "power_shared",
            "power",
            "power, 4 tasks x 10 runs, all shared",
            grouped=True,
            pooling={"E": "shared", "A": "shared"},
        ),
        Config(
            "power_student_t",
            "power",
            "power, 30 runs, one group, Student-t noise (nu with its default prior)",
            noise="student_t",
        ),
    )
}


def design(config: Config, rng: np.random.Generator) -> pd.DataFrame:
    """Scales of the runs (no response yet), fixed across replicates."""
    if config.law == "chinchilla":
        n = 40
        return pd.DataFrame(
            {
                "params": 10 ** rng.uniform(np.log10(5e7), np.log10(5e9), n),
                "tokens": 10 ** rng.uniform(9.0, 11.0, n),
            }
        )
    if config.grouped:
        groups, per_group = 4, 10
        return pd.DataFrame(
            {
                "flops": 10 ** rng.uniform(17.0, 21.0, groups * per_group),
                GROUP: np.repeat([f"t{g}" for g in range(groups)], per_group),
            }
        )
    return pd.DataFrame({"flops": 10 ** rng.uniform(17.0, 21.0, 30)})


def make_model(config: Config) -> bs.ScalingModel:
    """The model fitted (and simulated from) in a configuration."""
    names = {*bs.get_law(config.law).params, "sigma"}
    return bs.ScalingModel(
        config.law,
        group=GROUP if config.grouped else None,
        pooling=config.pooling,
        noise=config.noise,
        priors={k: v for k, v in PRIORS.items() if k in names},
    )


# -- the prior, mirrored from ModelSpec ----------------------------------------------------------
# Written out in numpy rather than calling the package's transforms (Param.from_unconstrained,
# ModelSpec.constrain): a mistake there must show as miscalibration, not be copied into the truth.


def _from_unconstrained(param: bs.Param, u: np.ndarray) -> np.ndarray:
    if param.support == "positive":
        return param.lower + np.exp(u)
    if param.support == "unit":
        return 1.0 / (1.0 + np.exp(-u))
    return u


def draw_truth(
    spec: ModelSpec, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One draw from the model's prior.

    Returns the parameters in the reference convention (scalars for shared parameters, one value
    per group otherwise) and the population centre (``<name>_mu``, reference convention) and
    spread (``<name>_tau``) of each partially pooled parameter.
    """
    groups = len(spec.labels)
    values: dict[str, np.ndarray] = {}
    population: dict[str, np.ndarray] = {}
    for name, param in spec.params.items():
        pooling = spec.pooling[name] if spec.group else "shared"
        prior = spec.priors[name]
        partial = pooling == "partial"
        shape = (groups,) if pooling == "independent" else ()
        if param.coordinate == "log" or param.support != "positive":
            # _sample_standardised + constrain: u = loc + scale z (centre + tau z_g if partial).
            if partial:
                centre = prior.loc + prior.scale * rng.standard_normal()
                tau = abs(rng.normal(0.0, spec.group_sd[name]))
                u = centre + tau * rng.standard_normal(groups)
                population[f"{name}_mu"] = _from_unconstrained(param, np.asarray(centre))
                population[f"{name}_tau"] = np.asarray(tau)
            else:
                u = prior.loc + prior.scale * rng.standard_normal(shape)
            values[name] = _from_unconstrained(param, np.asarray(u))
            continue
        # _sample_direct: the value (shared, independent or population centre) is LogNormal(loc,
        # scale); partially pooled group values are LogNormal(log centre, tau) around it. The
        # sampling coordinate is a reparametrisation only, so it does not enter the simulation.
        value = np.exp(prior.loc + prior.scale * rng.standard_normal(shape if not partial else ()))
        if not partial:
            values[name] = value
            continue
        tau = abs(rng.normal(0.0, spec.group_sd[name]))
        values[name] = value * np.exp(tau * rng.standard_normal(groups))
        population[f"{name}_mu"] = np.asarray(value)
        population[f"{name}_tau"] = np.asarray(tau)
    return values, population


def to_paper_truth(
    spec: ModelSpec, values: Mapping[str, np.ndarray], population: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """True values named and converted as in ``post.idata.posterior`` (papers' convention)."""
    paper = spec.to_paper(values)
    out = {**paper, **{k: np.asarray(v, dtype=np.float64) for k, v in population.items()}}
    # As bayescale.posterior.from_values: a population amplitude converts with its exponent's
    # centre, and is only reported when that centre is a single value.
    for amp, (exponent, scale) in spec.law_obj.amplitudes.items():
        if f"{amp}_mu" not in population:
            continue
        centre = population.get(f"{exponent}_mu", values[exponent])
        if np.ndim(centre) == 0:
            log_ref = math.log(spec.references[spec.columns[scale]])
            out[f"{amp}_mu"] = population[f"{amp}_mu"] * np.exp(centre * log_ref)
        else:
            del out[f"{amp}_mu"]
    return out


def simulate(
    spec: ModelSpec,
    data: bs.ScalingData,
    values: Mapping[str, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:
    """Responses drawn from the model's likelihood at the true (reference-convention) values."""
    codes = data.codes
    per_run = {k: v[codes] if np.ndim(v) else v for k, v in values.items()}
    x = {name: jnp.asarray(v) for name, v in data.log_scales().items()}
    x = {law_input: x[column] for law_input, column in spec.columns.items()}
    params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in per_run.items()}
    mean = np.asarray(spec.law_obj.predict(params, x), dtype=np.float64)
    noise = {k: np.broadcast_to(v, mean.shape) for k, v in per_run.items()}
    return draw_noise(spec.noise, rng, mean, noise)


# -- ranks and the test ----------------------------------------------------------------------


def flatten(
    spec: ModelSpec, name: str, array: np.ndarray, per_group: bool
) -> dict[str, np.ndarray]:
    """``E`` -> ``{"E": ...}``; a per-group ``E`` (trailing group axis) -> ``{"E[t0]": ...}``."""
    if per_group:
        return {f"{name}[{label}]": array[..., i] for i, label in enumerate(spec.labels)}
    return {name: array}


def thin(draws: np.ndarray) -> np.ndarray:
    """``NUM_RANK_DRAWS`` draws evenly spaced within each chain, from (chain, draw)."""
    chains, length = draws.shape
    per_chain = math.ceil((NUM_RANK_DRAWS + 1) / chains)
    step = length // per_chain
    picked = draws[:, step // 2 :: step][:, :per_chain]
    return picked.reshape(-1)[:NUM_RANK_DRAWS]


def rank(draws: np.ndarray, truth: float, rng: np.random.Generator) -> int:
    """Number of draws below the truth, ties broken at random."""
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    return below + (int(rng.integers(0, ties + 1)) if ties else 0)


@dataclasses.dataclass
class Result:
    """Ranks and diagnostics of one configuration."""

    config: Config
    ranks: dict[str, list[int]]
    ess: dict[str, list[float]]
    divergent_fits: int
    depth_fits: int
    rhat_fits: int
    problem_fits: int
    replicates: int
    fit_s: float
    wall_s: float


def run_config(config: Config, replicates: int, seed: int, warmup: str) -> Result:
    """Simulate ``replicates`` tables, fit them in one ``fit_many`` call, rank the truths."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    frame = design(config, rng)
    model = make_model(config)
    spec, data = model.specify(frame.assign(loss=1.0))
    tables, truths = [], []
    for _ in range(replicates):
        values, population = draw_truth(spec, rng)
        loss = simulate(spec, data, values, rng)
        tables.append(frame.assign(loss=loss))
        truths.append(to_paper_truth(spec, values, population))
    fit_start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        posteriors = bs.fit_many(model, tables, seed=seed, warmup=warmup, **SAMPLER)
    fit_s = time.perf_counter() - fit_start
    ranks: dict[str, list[int]] = {}
    ess: dict[str, list[float]] = {}
    divergent = depth = rhat = problems = 0
    for post, truth in zip(posteriors, truths, strict=True):
        if post.spec.references != spec.references or post.spec.priors != spec.priors:
            raise RuntimeError("a replicate's spec differs from the design's: SBC would be wrong")
        divergent += post.diagnostics.num_divergent > 0
        depth += post.diagnostics.num_max_tree_depth > 0
        problems += not post.diagnostics.ok
        rhat += bool(post.diagnostics.table["r_hat"].max() > 1.01)
        posterior = post.idata.posterior
        fitted = set(posterior.data_vars)
        if fitted != set(truth):
            raise RuntimeError(f"posterior has {sorted(fitted)}, simulation has {sorted(truth)}")
        table = post.diagnostics.table
        for name in posterior.data_vars:
            per_group = GROUP in posterior[name].dims
            if per_group != (np.ndim(truth[name]) == 1):
                raise RuntimeError(f"{name}: posterior and simulation disagree on its groups")
            draws = flatten(spec, name, posterior[name].values, per_group)
            true = flatten(spec, name, np.asarray(truth[name]), per_group)
            for label, d in draws.items():
                ranks.setdefault(label, []).append(rank(thin(d), float(true[label]), rng))
                ess.setdefault(label, []).append(
                    float(min(table.loc[label, "ess_bulk"], table.loc[label, "ess_tail"]))
                )
    return Result(
        config=config,
        ranks=ranks,
        ess=ess,
        divergent_fits=divergent,
        depth_fits=depth,
        rhat_fits=rhat,
        problem_fits=problems,
        replicates=replicates,
        fit_s=fit_s,
        wall_s=time.perf_counter() - start,
    )


def chi_square(ranks: list[int]) -> float:
    """p-value of the chi-square test of uniform ranks over ``NUM_BINS`` equal bins."""
    counts = np.bincount(np.asarray(ranks) * NUM_BINS // (NUM_RANK_DRAWS + 1), minlength=NUM_BINS)
    return float(scipy.stats.chisquare(counts).pvalue)


def plot(result: Result, path: Path) -> None:
    """Rank histograms, one panel per parameter, with the 99% band of a uniform bin count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.ranks)
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    expected = result.replicates / NUM_BINS
    low, high = scipy.stats.binom.ppf([0.005, 0.995], result.replicates, 1 / NUM_BINS)
    for ax, name in zip(axes.flat, names, strict=False):
        counts = np.bincount(
            np.asarray(result.ranks[name]) * NUM_BINS // (NUM_RANK_DRAWS + 1),
            minlength=NUM_BINS,
        )
        ax.axhspan(low, high, color="0.85")
        ax.axhline(expected, color="0.5", lw=0.8)
        ax.bar(np.arange(NUM_BINS), counts, width=0.9, color="C0")
        ax.set_title(f"{name}  p={chi_square(result.ranks[name]):.3f}", fontsize=9)
        ax.set_xticks([])
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"SBC rank histograms: {result.config.description}, R={result.replicates}, "
        f"L={NUM_RANK_DRAWS}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def environment(warmup: str) -> list[str]:
    """Machine and versions, as markdown bullet lines."""
    versions = {}
    for name in ("bayescale", "jax", "numpyro", "arviz", "numpy", "scipy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    listed = ", ".join(f"{k} {v}" for k, v in versions.items())
    priors = ", ".join(
        f"{k} ~ LogNormal(log {math.exp(p.loc):g}, {p.scale:g})" for k, p in PRIORS.items()
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return [
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"JAX devices: {jax.devices()}",
        f"- versions: python {platform.python_version()}, {listed} (git {commit})",
        f"- sampler per fit: {SAMPLER}, warmup {warmup!r}, batched with bs.fit_many; ranks among "
        f"L={NUM_RANK_DRAWS} draws thinned evenly from each chain, {NUM_BINS} bins",
        f"- priors: {priors} (B, beta: chinchilla only); tau ~ HalfNormal(0.5) and nu - "
        f"{NU.lower:g} ~ LogNormal(log {math.exp(NU.prior.loc):g}, {NU.prior.scale:g}) (defaults)",
        f"- load average at start (1, 5, 15 min): {load}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="R = 50 replicates")
    parser.add_argument("--replicates", type=int, default=None, help="R (default 200)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--warmup",
        choices=WARMUPS,
        default=BATCHED_WARMUP,
        help=f"sampler warmup (default {BATCHED_WARMUP!r}, fit_many's)",
    )
    args = parser.parse_args(argv)
    replicates = args.replicates or (50 if args.quick else 200)
    OUT.mkdir(parents=True, exist_ok=True)

    print(f"## Simulation-based calibration: R={replicates} replicates per configuration\n")
    print("\n".join(environment(args.warmup)))
    print()
    results = []
    for name in args.configs:
        # Each configuration's seed depends on its place in CONFIGS, not on --configs, so a
        # configuration run alone reproduces its rows of the full run.
        seed = args.seed + 1000 * list(CONFIGS).index(name)
        result = run_config(CONFIGS[name], replicates, seed, args.warmup)
        path = OUT / f"sbc_{name}.png"
        plot(result, path)
        results.append(result)
        print(
            f"- {name} ({result.config.description}): wall {result.wall_s:.1f} s, of which "
            f"fit_many {result.fit_s:.1f} s; fits with divergences {result.divergent_fits}, "
            f"with max-tree-depth hits {result.depth_fits}, with R-hat > 1.01 {result.rhat_fits}, "
            "failing any bayescale check "
            f"(R-hat, ESS, divergences, depth) {result.problem_fits}; figure {path.name}",
            flush=True,
        )
    print()
    print(
        "| configuration | parameter | replicates | chi-square p | fits with divergences | "
        "median min(bulk, tail) ESS | mean rank / L |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    failed = []
    for result in results:
        for name, ranks in result.ranks.items():
            p = chi_square(ranks)
            if p <= 0.01:
                failed.append(f"{result.config.name}:{name}")
            print(
                f"| {result.config.name} | {name} | {len(ranks)} | {p:.3f} | "
                f"{result.divergent_fits / result.replicates:.3f} | "
                f"{np.median(result.ess[name]):.0f} | "
                f"{np.mean(ranks) / NUM_RANK_DRAWS:.3f} |"
            )
    total = sum(r.wall_s for r in results)
    print(f"\nparameters with p <= 0.01: {', '.join(failed) if failed else 'none'}")
    print(f"total wall time: {total:.1f} s")
    print(f"load average at end (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
