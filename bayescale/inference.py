"""NUTS in NumPyro: run the sampler, return a `Posterior`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from numpyro.infer import MCMC, NUTS, init_to_uniform
from numpyro.infer.util import log_likelihood

from bayescale.data import ScalingData
from bayescale.errors import SamplingError, SpecError, warn_sampling
from bayescale.model import ScalingModel
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
    unknown = sorted(set(sampler_config) - SAMPLER_KEYS)
    if unknown:
        raise SpecError(f"unknown sampler options {unknown}; known are {sorted(SAMPLER_KEYS)}.")
    config = {**model.default_sampler_config, **sampler_config}
    enable_compilation_cache()
    spec, scaling_data = model.specify(data)
    x = {name: jnp.asarray(v) for name, v in _law_inputs(spec, scaling_data).items()}
    codes = jnp.asarray(scaling_data.codes)
    log_y = jnp.asarray(np.log(scaling_data.y))

    kernel = NUTS(
        spec.numpyro_model,
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
    mcmc.run(jax.random.PRNGKey(seed), x, codes, log_y, extra_fields=("diverging", "num_steps"))
    latent = mcmc.get_samples(group_by_chain=True)
    stats = {k: np.asarray(v) for k, v in mcmc.get_extra_fields(group_by_chain=True).items()}
    loglik = log_likelihood(spec.numpyro_model, latent, x, codes, log_y, batch_ndims=2)["y"]
    # Density of the response itself, not of its log: subtract log y (the Jacobian).
    loglik = np.asarray(loglik, dtype=np.float64) - np.log(scaling_data.y)
    posterior = from_samples(
        spec,
        scaling_data,
        latent={k: np.asarray(v) for k, v in latent.items()},
        stats=stats,
        log_likelihood=loglik,
        sampler={**config, "seed": seed, "chain_method": method},
    )
    problems = posterior.diagnostics.problems
    if problems:
        message = "sampling diagnostics failed: " + " ".join(problems)
        if strict:
            raise SamplingError(message)
        warn_sampling(message)
    return posterior


def _law_inputs(spec, data: ScalingData) -> dict[str, np.ndarray]:
    log_scales = data.log_scales()
    return {name: log_scales[column] for name, column in spec.columns.items()}
