"""NUTS in NumPyro: run the sampler, return a `Posterior`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale.data import ScalingData
from bayescale.errors import SamplingError, SpecError, warn_sampling
from bayescale.model import ModelSpec, ScalingModel
from bayescale.posterior import Posterior, from_values
from bayescale.sampler import run_nuts
from bayescale.starting import INIT_TRIES

SAMPLER_KEYS = frozenset(ScalingModel.default_sampler_config)


CACHE_ENV = "BAYESCALE_CACHE_DIR"
# Warmup schemes (`bayescale.sampler`): a Laplace start, or NumPyro's adaptation from the identity.
WARMUPS = ("laplace", "standard")
# `fit_many`'s default warmup: its lanes run in lockstep (see its docstring).
BATCHED_WARMUP = "standard"
# Mass matrices (``dense_mass``): dense, diagonal, or "groups", which couples each group's
# parameters with the shared ones only (`bayescale.mass`).
MASS_MATRICES = (True, False, "groups")
# From this many groups the default mass matrix is "groups". Measured on 2 CPU cores
# (benchmarks/README.md, `many_groups.py`, Student-t noise): at 10 groups the dense matrix took
# 10.2 s against 14.9 s, from 30 to 100 groups the two took about as long, and at 200 and 400
# groups the grouped one took half and a quarter of the dense one's time.
GROUPED_MASS_MIN_GROUPS = 200


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
    if progress_bar is None:
        progress_bar = sys.stderr.isatty()
    method = chain_method(config["num_chains"])
    return _sample(
        [spec], [scaling_data], config, seed, strict, method=method, progress=progress_bar
    )[0]


# Target acceptance when any parameter is partially pooled. The curvature of a hierarchy changes
# with the between-group spread, and with few groups the posterior of the spread reaches both
# small values (a funnel) and large ones; smaller steps avoid most divergences there
# (benchmarks/README.md, `pooling.py`).
PARTIAL_POOLING_TARGET_ACCEPT = 0.95


def _sampler_config(
    model: ScalingModel, spec: ModelSpec, overrides: dict[str, Any], *, batched: bool = False
) -> dict[str, Any]:
    """Merge sampler overrides into the defaults for ``spec``; turn on the compilation cache.

    ``batched`` (`fit_many`) defaults to NumPyro's warmup: its lanes run in lockstep.
    """
    unknown = sorted(set(overrides) - SAMPLER_KEYS)
    if unknown:
        raise SpecError(f"unknown sampler options {unknown}; known are {sorted(SAMPLER_KEYS)}.")
    defaults = dict(model.default_sampler_config)
    if spec.group is not None and "partial" in spec.pooling.values():
        defaults["target_accept_prob"] = PARTIAL_POOLING_TARGET_ACCEPT
    if batched:
        defaults["warmup"] = BATCHED_WARMUP
    per_group = any(map(spec.per_group, spec.params))
    if per_group and len(spec.labels) >= GROUPED_MASS_MIN_GROUPS:
        defaults["dense_mass"] = "groups"
    config = {**defaults, **overrides}
    for option, known in (("warmup", WARMUPS), ("dense_mass", MASS_MATRICES)):
        if config[option] not in known:
            raise SpecError(f"unknown {option} {config[option]!r}; known are {list(known)}.")
    if config["dense_mass"] != "groups":
        config["dense_mass"] = bool(config["dense_mass"])
    elif not per_group:
        raise SpecError(
            "dense_mass='groups' couples each group's parameters with the shared ones, but no "
            f"parameter of this model takes a value per group (pooling {dict(spec.pooling)}); "
            "use dense_mass=True."
        )
    enable_compilation_cache()
    return config


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
        Overrides of `ScalingModel.default_sampler_config`, except that ``warmup`` defaults to
        ``"standard"`` (NumPyro's adaptation from the identity): lanes run in lockstep, so the
        warmup costs as much as its slowest lane, and a chain whose Laplace approximation is
        poor (a banana or a funnel) runs at maximum tree depth until its first adaptation
        window. Simulation-based calibration of the power law (200 fits, 2 chains each) took
        40.0 s with ``"standard"`` and 30.3 s with ``"laplace"`` when no lane hit the maximum
        tree depth, but 193.1 s with ``"laplace"`` in an earlier run where one lane did
        (benchmarks/README.md).

    Returns
    -------
    list of Posterior
        One per table, in order; each carries its own diagnostics.

    Raises
    ------
    SpecError
        If the tables differ in shape (number of runs or of groups).
    """
    if not tables:
        raise SpecError("fit_many needs at least one table.")
    specs, datas = zip(*(model.specify(table) for table in tables), strict=True)
    template = specs[0]
    config = _sampler_config(model, template, sampler_config, batched=True)
    for i, (spec, data) in enumerate(zip(specs, datas, strict=True)):
        same = data.num_runs == datas[0].num_runs and len(spec.labels) == len(template.labels)
        if not same:
            raise SpecError(
                f"table {i} has {data.num_runs} runs in {len(spec.labels)} groups, table 0 has "
                f"{datas[0].num_runs} in {len(template.labels)}: fit_many needs tables of one "
                "shape. Fit tables of other shapes in a separate call."
            )
    return _sample(specs, datas, config, seed, strict, method="batched", progress=False)


def _sample(
    specs: Sequence[ModelSpec],
    datas: Sequence[ScalingData],
    config: dict[str, Any],
    seed: int,
    strict: bool,
    *,
    method: str,
    progress: bool,
) -> list[Posterior]:
    """Sample every table's posterior in one program; table ``i`` uses keys split from ``seed``."""
    names = list(specs[0].params)
    num_chains = config["num_chains"]
    inputs = [_law_inputs(spec, data) for spec, data in zip(specs, datas, strict=True)]
    args = (
        {k: jnp.asarray(np.stack([table[k] for table in inputs])) for k in specs[0].columns},
        jnp.asarray(np.stack([d.codes for d in datas])),
        jnp.asarray(np.stack([np.log(d.y) for d in datas])),
        jnp.asarray(np.array([[s.priors[n].loc for n in names] for s in specs])),
    )
    keys = jax.random.split(jax.random.PRNGKey(seed), len(specs) * num_chains)
    draws = run_nuts(
        specs[0],
        config,
        keys.reshape(len(specs), num_chains, *keys.shape[1:]),
        args,
        parallel=method == "parallel",
        progress=progress,
    )
    if not draws.started.all():
        where = f"{int((~draws.started).sum())} of {draws.started.size} chains"
        if len(specs) > 1:
            where += f", tables {sorted({int(t) for t in np.nonzero(~draws.started)[0]})}"
        raise SamplingError(
            f"no starting point with a finite log density in {INIT_TRIES} tries ({where}): the "
            "law returns NaN, inf or non-positive values over its priors' range. Check the "
            "law's formula and its priors."
        )
    posteriors = [
        from_values(
            spec,
            data,
            values={k: v[i] for k, v in draws.values.items()},
            stats={
                "diverging": draws.diverging[i],
                "num_steps": draws.num_steps[i],
                "step_size": draws.step_size[i],
            },
            log_likelihood=draws.log_likelihood[i],
            sampler={**config, "seed": seed, "chain_method": method}
            | ({"table": i} if method == "batched" else {}),
        )
        for i, (spec, data) in enumerate(zip(specs, datas, strict=True))
    ]
    for posterior in posteriors:
        _report(posterior, strict)
    return posteriors


def _law_inputs(spec, data: ScalingData) -> dict[str, np.ndarray]:
    log_scales = data.log_scales()
    return {name: log_scales[column] for name, column in spec.columns.items()}
