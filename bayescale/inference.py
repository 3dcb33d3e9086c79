"""NUTS in NumPyro: run the sampler, return a `Posterior`."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS, init_to_uniform
from numpyro.infer.hmc import hmc
from numpyro.infer.util import initialize_model

from bayescale.data import ScalingData
from bayescale.errors import SamplingError, SpecError, warn_sampling
from bayescale.laws import Prior
from bayescale.model import ModelSpec, ScalingModel
from bayescale.posterior import Posterior, from_samples

SAMPLER_KEYS = frozenset(ScalingModel.default_sampler_config)


CACHE_ENV = "BAYESCALE_CACHE_DIR"


def enable_compilation_cache() -> None:
    """Keep compiled samplers on disk so a fit of a shape already seen skips compilation.

    Uses ``$BAYESCALE_CACHE_DIR`` (default ``~/.cache/bayescale/xla``); an empty value turns the
    cache off. A cache the caller configured in JAX is left as it is.
    """
    if jax.config.jax_compilation_cache_dir is not None:
        return
    directory = os.environ.get(CACHE_ENV, str(Path.home() / ".cache" / "bayescale" / "xla"))
    if not directory:
        return
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def chain_method(num_chains: int) -> str:
    """Run chains in parallel when JAX has a device per chain, else vectorised on one."""
    return "parallel" if jax.local_device_count() >= num_chains > 1 else "vectorized"


def fit(
    model: ScalingModel,
    data: pd.DataFrame | ScalingData,
    *,
    seed: int = 0,
    strict: bool = False,
    progress_bar: bool | None = None,
    **sampler_config: Any,
) -> Posterior:
    """Fit ``model`` to ``data`` with NUTS and return the posterior.

    Parameters
    ----------
    model : ScalingModel
        Law, pooling, noise and priors.
    data : DataFrame or ScalingData
        The table of runs.
    seed : int, default 0
        Random seed.
    strict : bool, default False
        Raise `SamplingError` when diagnostics fail instead of warning.
    progress_bar : bool, optional
        By default shown only when standard error is a terminal.
    **sampler_config
        Overrides of `ScalingModel.default_sampler_config`.

    Returns
    -------
    Posterior
        Draws in the papers' convention, diagnostics, and the spec to rebuild the model.

    Raises
    ------
    DataError, SpecError
        For invalid data or options.
    SamplingError
        With ``strict=True``, when R-hat, ESS, divergences or tree depth fail.
    """
    spec, scaling_data = model.specify(data)
    config = _sampler_config(model, spec, sampler_config)
    x = {name: jnp.asarray(v) for name, v in _law_inputs(spec, scaling_data).items()}
    codes = jnp.asarray(scaling_data.codes)
    log_y = jnp.asarray(np.log(scaling_data.y))

    spec_for, model_fn, loc = _with_prior_locations(spec)
    kernel = NUTS(
        model_fn,
        dense_mass=config["dense_mass"],
        target_accept_prob=config["target_accept_prob"],
        max_tree_depth=config["max_tree_depth"],
        init_strategy=init_to_uniform(radius=1.0),
    )
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    method = chain_method(config["num_chains"])
    mcmc = MCMC(
        kernel,
        num_warmup=config["num_warmup"],
        num_samples=config["num_samples"],
        num_chains=config["num_chains"],
        chain_method=method,
        progress_bar=progress_bar,
    )
    mcmc.run(
        jax.random.PRNGKey(seed), x, codes, log_y, loc, extra_fields=("diverging", "num_steps")
    )
    latent = mcmc.get_samples(group_by_chain=True)
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    loglik = np.asarray(
        _pointwise_log_likelihood(spec_for, latent, x, codes, log_y, loc), dtype=np.float64
    )
    posterior = from_samples(
        spec,
        scaling_data,
        latent={k: np.asarray(v) for k, v in latent.items()},
        stats=stats,
        log_likelihood=loglik,
        sampler={**config, "seed": seed, "chain_method": method},
    )
    _report(posterior, strict)
    return posterior


# Target acceptance when any parameter is partially pooled. The curvature of a hierarchy changes
# with the between-group spread, and with few groups the posterior of the spread reaches both
# small values (a funnel) and large ones; smaller steps avoid most divergences there
# (benchmarks/README.md, `pooling.py`).
PARTIAL_POOLING_TARGET_ACCEPT = 0.95


def _with_prior_locations(
    template: ModelSpec,
) -> tuple[Callable[[jax.Array], ModelSpec], Callable[..., None], jax.Array]:
    """Return the spec and model as functions of the prior locations, and ``template``'s.

    Default priors in response units are centred on each table's typical response. Passing
    their locations as data rather than baking them into the program lets every table of one
    shape share one compiled sampler (and its on-disk cache entry).
    """
    names = list(template.params)

    def spec_for(loc: jax.Array) -> ModelSpec:
        priors = {n: Prior(loc[i], template.priors[n].scale) for i, n in enumerate(names)}
        return dataclasses.replace(template, priors=priors)

    def model_fn(x, codes, log_y, loc) -> None:
        spec_for(loc).numpyro_model(x, codes, log_y)

    return spec_for, model_fn, jnp.asarray([template.priors[n].loc for n in names])


@functools.partial(jax.jit, static_argnums=0)
def _pointwise_log_likelihood(spec_for, latent, x, codes, log_y, loc) -> jax.Array:
    """Log density of every run's response for every (chain, draw), as one compiled program."""
    spec = spec_for(loc)
    return jax.vmap(jax.vmap(lambda z: spec.log_likelihood(z, x, codes, log_y)))(latent)


def _sampler_config(
    model: ScalingModel, spec: ModelSpec, overrides: dict[str, Any]
) -> dict[str, Any]:
    """Merge sampler overrides into the defaults for ``spec``; turn on the compilation cache."""
    unknown = sorted(set(overrides) - SAMPLER_KEYS)
    if unknown:
        raise SpecError(f"unknown sampler options {unknown}; known are {sorted(SAMPLER_KEYS)}.")
    enable_compilation_cache()
    defaults = dict(model.default_sampler_config)
    if spec.group is not None and "partial" in spec.pooling.values():
        defaults["target_accept_prob"] = PARTIAL_POOLING_TARGET_ACCEPT
    return {**defaults, **overrides}


def _report(posterior: Posterior, strict: bool) -> None:
    problems = posterior.diagnostics.problems
    if problems:
        message = "sampling diagnostics failed: " + " ".join(problems)
        if strict:
            raise SamplingError(message)
        warn_sampling(message)


def fit_many(
    model: ScalingModel,
    tables: Sequence[pd.DataFrame],
    *,
    seed: int = 0,
    strict: bool = False,
    **sampler_config: Any,
) -> list[Posterior]:
    """Fit one model to many tables at once, vectorised in one compiled program.

    Every chain of every table is one lane of a vectorised NUTS run, so hundreds of small fits
    (simulation-based calibration, per-task fits, backtests) cost one compilation. Tables must
    share their shape: the same number of runs and of groups.

    Parameters
    ----------
    model : ScalingModel
        Law, pooling, noise and priors, shared by all tables.
    tables : sequence of DataFrame
        The tables of runs.
    seed : int, default 0
        Random seed; table ``i`` is fitted with its own key derived from it.
    strict : bool, default False
        Raise `SamplingError` when any fit fails its diagnostics, instead of warning.
    **sampler_config
        Overrides of `ScalingModel.default_sampler_config`.

    Returns
    -------
    list of Posterior
        One per table, in order; each carries its own diagnostics.

    Raises
    ------
    SpecError
        If the tables differ in shape or in the structure their model resolves to.
    """
    if not tables:
        raise SpecError("fit_many needs at least one table.")
    specs, datas = zip(*(model.specify(table) for table in tables), strict=True)
    template = specs[0]
    config = _sampler_config(model, template, sampler_config)
    for i, (spec, data) in enumerate(zip(specs, datas, strict=True)):
        same = data.num_runs == datas[0].num_runs and len(spec.labels) == len(template.labels)
        if not same:
            raise SpecError(
                f"table {i} has {data.num_runs} runs in {len(spec.labels)} groups, table 0 has "
                f"{datas[0].num_runs} in {len(template.labels)}: fit_many needs tables of one "
                "shape. Fit tables of other shapes in a separate call."
            )
    spec_for, model_fn, _ = _with_prior_locations(template)
    names = list(template.params)
    num_chains, num_warmup = config["num_chains"], config["num_warmup"]
    args = (
        {
            k: jnp.asarray(
                np.stack([_law_inputs(s, d)[k] for s, d in zip(specs, datas, strict=True)])
            )
            for k in template.columns
        },
        jnp.asarray(np.stack([d.codes for d in datas])),
        jnp.asarray(np.stack([np.log(d.y) for d in datas])),
        jnp.asarray(np.array([[s.priors[n].loc for n in names] for s in specs])),
    )

    info = initialize_model(
        jax.random.PRNGKey(seed),
        model_fn,
        model_args=jax.tree.map(lambda a: a[0], args),
        dynamic_args=True,
        init_strategy=init_to_uniform(radius=1.0),
    )
    init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
    sites = list(info.param_info.z)

    def run_chain(key, table_args):
        key_init, key_run = jax.random.split(key)
        z0 = {
            name: jax.random.uniform(k, jnp.shape(info.param_info.z[name]), minval=-1, maxval=1)
            for name, k in zip(sites, jax.random.split(key_init, len(sites)), strict=True)
        }
        state = init_kernel(
            z0,
            num_warmup,
            dense_mass=config["dense_mass"],
            target_accept_prob=config["target_accept_prob"],
            max_tree_depth=config["max_tree_depth"],
            model_args=table_args,
            rng_key=key_run,
        )

        def step(state, _):
            state = sample_kernel(state, model_args=table_args)
            return state, (state.z, state.diverging, state.num_steps)

        _, (z, diverging, num_steps) = jax.lax.scan(
            step, state, None, length=num_warmup + config["num_samples"]
        )
        z, diverging, num_steps = jax.tree.map(lambda a: a[num_warmup:], (z, diverging, num_steps))
        latent = jax.vmap(info.postprocess_fn(*table_args))(z)
        latent = {name: latent[name] for name in sites}
        x, codes, log_y, loc = table_args
        spec = spec_for(loc)
        loglik = jax.vmap(lambda draw: spec.log_likelihood(draw, x, codes, log_y))(latent)
        return latent, diverging, num_steps, loglik

    num_tables = len(tables)
    keys = jax.random.split(jax.random.PRNGKey(seed), num_tables * num_chains)
    lane_args = jax.tree.map(lambda a: jnp.repeat(a, num_chains, axis=0), args)
    outputs = jax.jit(jax.vmap(run_chain))(keys, lane_args)

    def by_table(a):
        a = np.asarray(a)
        return a.reshape(num_tables, num_chains, *a.shape[1:])

    latent, diverging, num_steps, loglik = jax.tree.map(by_table, outputs)
    posteriors = [
        from_samples(
            spec,
            data,
            latent={k: v[i] for k, v in latent.items()},
            stats={"diverging": diverging[i], "num_steps": num_steps[i]},
            log_likelihood=loglik[i].astype(np.float64),
            sampler={**config, "seed": seed, "chain_method": "batched", "table": i},
        )
        for i, (spec, data) in enumerate(zip(specs, datas, strict=True))
    ]
    for posterior in posteriors:
        _report(posterior, strict)
    return posteriors


def _law_inputs(spec, data: ScalingData) -> dict[str, np.ndarray]:
    log_scales = data.log_scales()
    return {name: log_scales[column] for name, column in spec.columns.items()}
