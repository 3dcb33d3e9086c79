"""Benchmark: the Chinchilla fit with bayescale against a textbook NumPyro model.

Measures, on this machine and in one process, fits of L = E + A N^-alpha + B D^-beta to the
240 Chinchilla runs kept by Besiroglu et al. (2024):

* bayescale: ``ScalingModel("chinchilla", noise=...).fit(df, seed=0)`` with its default sampler
  (4 chains x 1000 warmup / 1000 draws, dense mass matrix, standardised parameters), for
  Student-t and lognormal noise. bayescale keeps compiled samplers in a persistent cache
  (``$BAYESCALE_CACHE_DIR``); this script points it at a fresh, empty temporary directory, so the
  first fit of each noise compiles from scratch. Then two more identical fits: "bayescale
  (again, same process)" reuses the program the first fit built (no tracing, no compilation),
  and "bayescale (new process)" runs in a fresh Python process that finds the compiled program
  in the on-disk cache but must trace it again (the timed call is the fit, not the import).
  bayescale's wall time also covers what a fit does beyond sampling: pointwise log-likelihood,
  ArviZ conversion and diagnostics.
* textbook: the model as usually written, E, A, alpha, B, beta sampled directly (log E, log A,
  log B with broad Normal priors, alpha and beta HalfNormal), the law on raw log N and log D,
  Student-t or Normal noise on log loss, NumPyro's default NUTS (diagonal mass matrix), the same
  chains, draws and chain method as bayescale. It runs after the bayescale fits of its noise, so
  JAX's process-wide caches (small eager ops) are warm, but its sampler compiles from scratch.

Columns: wall time of the whole fit call (a fresh MCMC object, compilation included); the part
of it JAX spent tracing and compiling (from ``jax.monitoring`` events); min bulk and tail ESS
over E, A, alpha, B, beta (ArviZ); ESS/s (min bulk ESS / wall); gradient evaluations per draw
(mean NUTS leapfrog steps after warmup); divergences and max-tree-depth hits after warmup; max
R-hat over the law parameters; posterior medians of alpha and beta, to check the fits agree.

Run from the repository root::

    python benchmarks/chinchilla_fit.py            # full run, several minutes on 2 cores
    python benchmarks/chinchilla_fit.py --quick    # smoke test only: 200 warmup / 200 draws
    python benchmarks/chinchilla_fit.py --chains 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

import bayescale as bs
from bayescale.inference import CACHE_ENV, chain_method

LAW_PARAMS = ["E", "A", "alpha", "B", "beta"]
NOISES = ("student_t", "lognormal")
MAX_TREE_DEPTH = 10  # NumPyro's default, also bayescale's
COMPILE_EVENTS = "/jax/core/compile/"


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the results table."""

    model: str
    noise: str
    wall_s: float
    compile_s: float
    ess_bulk: float
    ess_tail: float
    steps_per_draw: float
    divergences: int
    depth_hits: int
    rhat_max: float
    alpha: float
    beta: float

    def markdown(self) -> str:
        """The row as a markdown table line."""
        cells = [
            self.model,
            self.noise,
            f"{self.wall_s:.1f}",
            f"{self.compile_s:.1f}",
            f"{self.ess_bulk:.0f}",
            f"{self.ess_tail:.0f}",
            f"{self.ess_bulk / self.wall_s:.1f}",
            f"{self.steps_per_draw:.1f}",
            str(self.divergences),
            str(self.depth_hits),
            f"{self.rhat_max:.3f}",
            f"{self.alpha:.3f} / {self.beta:.3f}",
        ]
        return "| " + " | ".join(cells) + " |"


HEADER = (
    "| model | noise | wall s | compile s | min bulk ESS | min tail ESS | ESS/s | grad evals/draw "
    "| divergences | max-depth hits | max R-hat | alpha / beta (median) |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def load_data():
    """The 240 Chinchilla runs kept by Besiroglu et al."""
    df = bs.datasets.load("chinchilla")
    return df[~df.besiroglu_excluded]


def load_average() -> str:
    """The machine's load averages, since other work on the same cores skews wall times."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def source_version() -> str:
    """``git describe`` of the bayescale checkout, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(bs.__file__),
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def environment(num_chains: int) -> str:
    """Machine and library versions, as markdown lines."""
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "arviz": az.__version__,
        "bayescale": f"{bs.__version__} (git {source_version()})",
    }
    return "\n".join(
        [
            f"- machine: {platform.platform()}, {platform.machine()}, "
            f"{os.cpu_count()} CPUs, JAX devices: {jax.devices()}",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
            f"- chain method: {chain_method(num_chains)}, "
            f"float64: {bool(jax.config.jax_enable_x64)}",
            f"- compilation cache: {CACHE_ENV}={os.environ.get(CACHE_ENV, '(unset)')}",
            f"- load average at start (1, 5, 15 min): {load_average()}",
        ]
    )


def row_from_draws(
    model: str,
    noise: str,
    wall_s: float,
    compile_s: float,
    posterior: dict[str, np.ndarray],
    num_steps: np.ndarray,
    diverging: np.ndarray,
) -> Row:
    """Summarise (chain, draw) arrays of the law parameters and NUTS statistics."""
    return Row(
        model=model,
        noise=noise,
        wall_s=wall_s,
        compile_s=compile_s,
        **worst_convergence(posterior, LAW_PARAMS),
        steps_per_draw=float(np.mean(num_steps)),
        divergences=int(np.sum(diverging)),
        depth_hits=int(np.sum(num_steps >= 2**MAX_TREE_DEPTH - 1)),
        alpha=float(np.median(posterior["alpha"])),
        beta=float(np.median(posterior["beta"])),
    )


def worst_convergence(draws: dict[str, np.ndarray], names: list[str]) -> dict[str, float]:
    """Smallest bulk and tail ESS and largest R-hat (ArviZ) over the parameters ``names``.

    Draws are (chain, draw, ...); every element of a per-group parameter counts. numpy's min and
    max, not xarray's: a NaN (a chain that never moved) must show.
    """
    idata = az.from_dict(posterior={k: np.asarray(draws[k]) for k in names})
    bulk = az.ess(idata, method="bulk")
    tail = az.ess(idata, method="tail")
    rhat = az.rhat(idata)
    return {
        "ess_bulk": float(np.min([bulk[k].values.min() for k in names])),
        "ess_tail": float(np.min([tail[k].values.min() for k in names])),
        "rhat_max": float(np.max([rhat[k].values.max() for k in names])),
    }


def _union_length(spans: list[tuple[float, float]]) -> float:
    """Total length covered by possibly nested or overlapping ``(start, end)`` spans."""
    total, reach = 0.0, -np.inf
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """Call ``fn``; return its result, wall time and time JAX spent compiling, in seconds.

    Compile time is the union of JAX's tracing, lowering and XLA compile spans (its
    ``/jax/core/compile/*`` monitoring events), which nest inside one another.
    """
    spans: list[tuple[float, float]] = []

    def listen(event: str, start: float, end: float, **_: object) -> None:
        if event.startswith(COMPILE_EVENTS):
            spans.append((start, end))

    jax.monitoring.register_event_time_span_listener(listen)
    try:
        start = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - start
    finally:
        jax.monitoring.unregister_event_time_span_listener(listen)
    return result, wall, _union_length(spans)


# -- bayescale ------------------------------------------------------------------------------


def run_bayescale(df, noise: str, sampler: dict, label: str) -> Row:
    """Time one `ScalingModel.fit` (everything it does, diagnostics included)."""
    model = bs.ScalingModel("chinchilla", noise=noise)
    with warnings.catch_warnings():
        # Failed diagnostics show in the table; the warning text would only repeat them.
        warnings.simplefilter("ignore", bs.SamplingWarning)
        post, wall, compile_s = timed(lambda: model.fit(df, seed=0, progress_bar=False, **sampler))
    posterior = {k: post.idata.posterior[k].values for k in LAW_PARAMS}
    stats = post.idata.sample_stats
    return row_from_draws(
        label, noise, wall, compile_s, posterior, stats["n_steps"].values, stats["diverging"].values
    )


# -- textbook NumPyro model -----------------------------------------------------------------


def textbook_model(log_n, log_d, log_loss=None, noise: str = "student_t") -> None:
    """Chinchilla law sampled directly on raw log N and log D, NumPyro's usual way."""
    log_e = numpyro.sample("log_E", dist.Normal(0.0, 5.0))
    log_a = numpyro.sample("log_A", dist.Normal(0.0, 5.0))
    log_b = numpyro.sample("log_B", dist.Normal(0.0, 5.0))
    alpha = numpyro.sample("alpha", dist.HalfNormal(1.0))
    beta = numpyro.sample("beta", dist.HalfNormal(1.0))
    sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
    mean = jnp.exp(log_e) + jnp.exp(log_a - alpha * log_n) + jnp.exp(log_b - beta * log_d)
    with numpyro.plate("runs", log_n.shape[0]):
        if noise == "lognormal":
            numpyro.sample("log_loss", dist.Normal(jnp.log(mean), sigma), obs=log_loss)
        else:
            nu = numpyro.sample("nu", dist.Gamma(2.0, 0.1))
            numpyro.sample("log_loss", dist.StudentT(nu, jnp.log(mean), sigma), obs=log_loss)


def fit_textbook(df, noise: str, sampler: dict) -> MCMC:
    """Run default NUTS on `textbook_model` in a fresh MCMC object."""
    num_chains = sampler["num_chains"]
    mcmc = MCMC(
        NUTS(textbook_model),
        num_warmup=sampler["num_warmup"],
        num_samples=sampler["num_samples"],
        num_chains=num_chains,
        chain_method=chain_method(num_chains),
        progress_bar=False,
    )
    data = {
        "log_n": jnp.asarray(np.log(df["params"].to_numpy())),
        "log_d": jnp.asarray(np.log(df["tokens"].to_numpy())),
        "log_loss": jnp.asarray(np.log(df["loss"].to_numpy())),
    }
    mcmc.run(jax.random.PRNGKey(0), **data, noise=noise, extra_fields=("num_steps", "diverging"))
    jax.block_until_ready(mcmc.get_samples())
    return mcmc


def run_textbook(df, noise: str, sampler: dict) -> Row:
    """Time `fit_textbook` and summarise it in the papers' convention (E, A, B, not logs)."""
    mcmc, wall, compile_s = timed(lambda: fit_textbook(df, noise, sampler))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    posterior = {
        "E": np.exp(samples["log_E"]),
        "A": np.exp(samples["log_A"]),
        "B": np.exp(samples["log_B"]),
        "alpha": samples["alpha"],
        "beta": samples["beta"],
    }
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return row_from_draws(
        "textbook NumPyro",
        noise,
        wall,
        compile_s,
        posterior,
        np.asarray(extra["num_steps"]),
        np.asarray(extra["diverging"]),
    )


# -- driver ---------------------------------------------------------------------------------


def sampler_settings(quick: bool, chains: int | None) -> dict:
    """bayescale's default draws and chains, shrunk by ``--quick`` or overridden by ``--chains``."""
    defaults = bs.ScalingModel.default_sampler_config
    draws = 200 if quick else defaults["num_samples"]
    warmup = 200 if quick else defaults["num_warmup"]
    return {
        "num_warmup": warmup,
        "num_samples": draws,
        "num_chains": chains or defaults["num_chains"],
    }


def warm_up_jax() -> None:
    """Pay JAX's one-off backend start-up before anything is timed."""
    jax.block_until_ready(jax.jit(lambda v: v * 2.0)(jnp.ones(3)))


def all_fits(df, sampler: dict) -> Iterator[Row]:
    """Per noise: bayescale cold, again, in a new process, then textbook; rows as they end."""
    for noise in NOISES:
        yield run_bayescale(df, noise, sampler, "bayescale")
        yield run_bayescale(df, noise, sampler, "bayescale (again, same process)")
        yield run_bayescale_in_new_process(noise, sampler)
        yield run_textbook(df, noise, sampler)


def run_bayescale_in_new_process(noise: str, sampler: dict) -> Row:
    """Time the same fit in a fresh interpreter that shares the on-disk compilation cache."""
    command = [sys.executable, __file__, "--one-fit", noise, "--sampler", json.dumps(sampler)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ)
    return Row(**json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Parse flags, print the environment, then run the fits, printing each row as it ends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200/200 draws, for smoke tests")
    parser.add_argument("--chains", type=int, default=None, help="chains (default: bayescale's)")
    parser.add_argument("--one-fit", choices=NOISES, help=argparse.SUPPRESS)
    parser.add_argument("--sampler", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_fit:  # the child process of run_bayescale_in_new_process
        warm_up_jax()
        row = run_bayescale(load_data(), args.one_fit, json.loads(args.sampler), "bayescale")
        print(json.dumps(dataclasses.asdict(row) | {"model": "bayescale (new process)"}))
        return
    sampler = sampler_settings(args.quick, args.chains)

    with tempfile.TemporaryDirectory(prefix="bayescale-bench-cache-") as cache:
        # An empty persistent cache, so that the first fit compiles whatever ran before.
        os.environ[CACHE_ENV] = cache
        warm_up_jax()
        df = load_data()
        print(f"## Chinchilla fit: {len(df)} runs, {sampler}\n")
        print(environment(sampler["num_chains"]) + "\n", flush=True)
        print(HEADER, flush=True)
        for row in all_fits(df, sampler):
            print(row.markdown(), flush=True)
        print(f"\nload average at end (1, 5, 15 min): {load_average()}")


if __name__ == "__main__":
    main()
