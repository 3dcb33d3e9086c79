"""NUTS as one compiled program per model structure: start, adapt, sample, constrain.

Everything a fit does on the device (finding a starting point, warmup, sampling, mapping draws
to parameters and the pointwise log-likelihood) is one `jax.jit` program, built once per model
structure and sampler setting and kept for the life of the process. A second fit of the same
shape neither traces nor compiles; across processes JAX's persistent cache
(`bayescale.inference.enable_compilation_cache`) skips the compilation.

With ``warmup="laplace"`` (the default of single fits), warmup starts from a Laplace
approximation instead of an identity mass matrix (`bayescale.starting`): each chain runs Adam
from its own dispersed starting point toward a posterior mode; the inverse Hessian there is the
first mass matrix, and the chain starts from a typical draw of that Normal. At the end of
each of NumPyro's doubling adaptation windows the mass matrix is re-estimated: the window's
regularised covariance, shrunk toward the matrix before it with weight n / (n + d) (n draws,
d unconstrained dimensions).
NumPyro's default starts from the identity and replaces the matrix by each window's estimate,
from as few as 25 draws, so with many groups most gradient evaluations of a fit went into
warmup. ``warmup="standard"`` is NumPyro's adaptation, from uniform starting points.

With ``dense_mass="groups"`` the mass matrix is a `bayescale.mass.GroupedNormal` (each group's
parameters coupled with the shared ones only): NUTS moves that Normal's standard coordinates, and
the windows (with either warmup) re-estimate it from each group's draws with the shared ones and
each group's regression on the shared ones from the Hessian at the draws' mean.

On tables of at least `RELATIVE_POTENTIAL_MIN_RUNS` runs NUTS's potential is relative to the
point the chain stands on (`bayescale.density`): every term of the log density minus its value
there, re-taken after each transition, so that float32 resolves energy differences of fits of
hundreds of thousands of runs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import jaxlib.version
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import init_to_uniform
from numpyro.infer.hmc import HMCState, hmc
from numpyro.infer.hmc_util import build_adaptation_schedule, warmup_adapter, welford_covariance
from numpyro.infer.util import ParamInfo, constrain_fn
from tqdm.auto import tqdm

from bayescale import density, mass
from bayescale._heap import release_free_memory
from bayescale.laws import Prior
from bayescale.model import ModelSpec
from bayescale.starting import INIT_RADIUS, dense_laplace, find_starts, hessian_products

# Host check-ins per program: progress bar updates and, for large programs, `_heap` releases.
CHECK_INS = 50

# Programs whose chains hold at least this many runs in all release the C heap's free memory at
# every check-in (`bayescale._heap`). Without it a fit of 1,000 groups (4 chains of 30,000 runs,
# 250 / 250 iterations) ended holding 1.45 GB resident, 0.75 GB after releasing. Smaller
# programs, whose heaps were not measured, run without check-ins unless they show progress.
RELEASE_MEMORY_MIN_RUNS = 2**16

# CPU programs of chains on separate devices whose runs times iterations per chain are at most
# this compile with XLA's older fusion emitters, which compile faster and run slower. Means of
# three alternating pairs of fresh processes on 2 cores, cold / compiled fit (older against
# default emitters): the Chinchilla fit (240 runs x 2,000 iterations) 5.72 / 0.99 s against
# 6.65 / 0.97 s; 10 groups of 30 runs 7.15 / 1.78 s against 8.78 / 1.42 s; 30 groups
# 8.96 / 3.84 s against 9.28 / 3.28 s; 100 groups 25.26 / 18.05 s against 24.72 / 17.49 s
# (benchmarks/README.md, `fusion_emitters.py`).
LEGACY_EMITTERS_MAX_RUN_ITERATIONS = 10**6

# Tables of at least this many runs sample on a potential relative to the chain's point
# (`bayescale.density`). Summed in float32, the log density of n runs carries rounding with an
# sd of about 0.0005 nats at 3,000 runs, 0.0032 at 30,000 and 0.0327 at 300,000 (`python
# benchmarks/float32_sums.py`); at 300,000 runs it cost most chains twice the gradient
# evaluations per draw. Smaller tables keep the plain sum: for them the relative potential only
# added compilation (cold fits of 240 and 300 runs took 4.91 and 7.26 s with it against 4.63 and
# 6.01 s with the plain sum, three alternating pairs, `python benchmarks/revisions.py`).
RELATIVE_POTENTIAL_MIN_RUNS = 2**14

# The axis of `jax.pmap` over chains, one per device.
_CHAINS = "chain"

TableArgs = tuple[dict[str, jax.Array], jax.Array, jax.Array, jax.Array]


@dataclasses.dataclass(frozen=True)
class Draws:
    """Post-warmup output, every array with leading (table, chain, draw) axes.

    Attributes
    ----------
    values : dict of str to ndarray
        Parameters and population centres and spreads (`ModelSpec.parameter_values`).
    diverging : ndarray of bool
        Divergent transitions.
    num_steps : ndarray of int
        Leapfrog steps (gradient evaluations) per draw.
    step_size : ndarray
        The step size each chain sampled with, the end of its warmup's, axes (table, chain).
    log_likelihood : ndarray
        Pointwise log density of every run, axes (table, chain, draw, run).
    started : ndarray of bool
        Whether each chain found a starting point with a finite log density, axes (table, chain).
    """

    values: dict[str, np.ndarray]
    diverging: np.ndarray
    num_steps: np.ndarray
    step_size: np.ndarray
    log_likelihood: np.ndarray
    started: np.ndarray


def _spec_for_locations(template: ModelSpec) -> Callable[[jax.Array], ModelSpec]:
    """Return ``template`` as a function of its prior locations (in `ModelSpec.params` order).

    Default priors in response units are centred on each table's typical response. Passing
    their locations as data rather than baking them into the program lets every table of one
    shape share one compiled sampler (and its on-disk cache entry).
    """
    names = list(template.params)

    def spec_for(loc: jax.Array) -> ModelSpec:
        priors = {n: Prior(loc[i], template.priors[n].scale) for i, n in enumerate(names)}
        return dataclasses.replace(template, priors=priors)

    return spec_for


def run_nuts(
    template: ModelSpec,
    config: Mapping[str, Any],
    keys: jax.Array,
    args: TableArgs,
    *,
    parallel: bool = False,
    progress: bool = False,
) -> Draws:
    """Run NUTS on every (table, chain) lane of ``keys``.

    Parameters
    ----------
    template : ModelSpec
        Structure shared by all tables (law, pooling, noise, prior scales, number of groups).
    config : mapping
        Sampler settings: ``num_warmup``, ``num_samples``, ``dense_mass``,
        ``target_accept_prob``, ``max_tree_depth``, ``warmup`` (``"laplace"`` or
        ``"standard"``).
    keys : jax.Array
        PRNG keys, shape (tables, chains, 2).
    args : tuple
        Law inputs, group codes, log responses and prior locations, each with a leading table
        axis.
    parallel : bool, default False
        Run the chains of a single table on separate devices (one per chain) instead of
        vectorised on one.
    progress : bool, default False
        Show a progress bar of sampler iterations.
    """
    program = _program(template, {k: config[k] for k in _SETTINGS}, parallel, progress)
    total = config["num_warmup"] + config["num_samples"]
    chains = keys.shape[1] if parallel else 1
    with _Progress(total, chains, enabled=progress):
        out = program(keys, args)
    values, diverging, num_steps, step_size, loglik, started = jax.tree.map(np.asarray, out)
    return Draws(values, diverging, num_steps, step_size, loglik, started)


_SETTINGS = (
    "num_warmup",
    "num_samples",
    "dense_mass",
    "target_accept_prob",
    "max_tree_depth",
    "warmup",
)


def structure_key(spec: ModelSpec) -> str:
    """Return what a compiled sampler depends on in ``spec``, as a comparable string.

    The law, noise, pooling, prior scales and number of groups; not the data-dependent prior
    locations, references, column names or group labels.
    """
    values = {
        "law": spec.law,
        # A law re-registered under the same name is a different program.
        "law_object": id(spec.law_obj),
        "noise": spec.noise,
        "pooling": spec.pooling,
        "prior_scales": {k: p.scale for k, p in spec.priors.items()},
        "group_sd": spec.group_sd,
        "grouped": spec.group is not None,
        "groups": len(spec.labels),
    }
    return json.dumps(values, sort_keys=True)


_PROGRAMS: dict[tuple, Callable[[jax.Array, TableArgs], tuple]] = {}


def _program(
    template: ModelSpec, config: dict[str, Any], parallel: bool, progress: bool
) -> Callable[[jax.Array, TableArgs], tuple]:
    """Return the compiled sampler for ``template``'s structure, built on first use."""
    key = (structure_key(template), json.dumps(config, sort_keys=True), parallel, progress)
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _build(template, config, parallel, progress)
    return _PROGRAMS[key]


def _build(
    template: ModelSpec, config: dict[str, Any], parallel: bool, progress: bool
) -> Callable[[jax.Array, TableArgs], tuple]:
    """Trace-ready sampler: vectorised lanes under one `jax.jit`, or chains under `jax.pmap`."""
    spec_for = _spec_for_locations(template)

    def model(x, codes, log_y, loc) -> None:
        spec_for(loc).numpyro_model(x, codes, log_y)

    # NUTS moves one flat vector of every latent site (one pytree leaf): with a leaf per site,
    # its trajectories spent about as long joining and splitting the sites as on the rest of a
    # step's bookkeeping (benchmarks/README.md). Jitted so that their call sites share a trace.
    @jax.jit
    def terms_at(table_args: TableArgs, flat: jax.Array) -> density.Terms:
        unravel = _flat_layout(model, table_args)[1]
        return density.log_density_terms(model, table_args, unravel(flat))

    @jax.jit
    def potential(table_args: TableArgs, flat: jax.Array) -> jax.Array:
        return density.potential(terms_at(table_args, flat))

    # On large tables NUTS's potential is relative to the terms at the chain's current point,
    # set anew after every transition (`rebase`), so its energies stay small enough for float32
    # to resolve.
    @jax.jit
    def relative_potential(
        table_args: TableArgs, reference: density.Terms, flat: jax.Array
    ) -> jax.Array:
        return density.relative_potential(terms_at(table_args, flat), reference)

    # With ``dense_mass="groups"`` NUTS moves the standard Normal coordinates of a
    # `mass.GroupedNormal` (its identity mass matrix is that Normal's covariance in z).
    grouped = config["dense_mass"] == "groups"
    num_groups = len(template.labels)

    def layout_of(table_args: TableArgs) -> mass.GroupLayout:
        layout = mass.group_layout(_flat_layout(model, table_args)[0], num_groups)
        if layout is None:
            raise ValueError("dense_mass='groups' needs a model with per-group parameters.")
        return layout

    def point_of(y: jax.Array, normal: mass.GroupedNormal | None, table_args: TableArgs):
        """Return the flat point of NUTS's coordinates ``y`` (the Normal's, with grouped masses)."""
        return mass.from_standard(normal, layout_of(table_args), y) if grouped else y

    def relative_to_point(table_args: TableArgs) -> bool:
        """Whether NUTS's potential is relative to the chain's point (a static choice)."""
        return table_args[1].shape[-1] >= RELATIVE_POTENTIAL_MIN_RUNS

    def nuts_potential(table_args, normal, reference: density.Terms | None, y: jax.Array):
        point = point_of(y, normal, table_args)
        if reference is None:
            return potential(table_args, point)
        return relative_potential(table_args, reference, point)

    def potential_fn_gen(table_args: TableArgs, normal, reference: density.Terms | None):
        return functools.partial(nuts_potential, table_args, normal, reference)

    def rebase(state: HMCState, normal, table_args: TableArgs):
        """Take the terms at the state's point as the reference; its potential becomes 0."""
        reference = terms_at(table_args, point_of(state.z, normal, table_args))
        zero = jnp.zeros_like(state.potential_energy)
        state = state._replace(potential_energy=zero, energy=state.energy - state.potential_energy)
        return state, reference

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo="NUTS")
    num_warmup = config["num_warmup"]
    total = num_warmup + config["num_samples"]
    dense = config["dense_mass"] is True
    laplace_warmup = config["warmup"] == "laplace"
    windows = _mass_matrix_windows(num_warmup) if laplace_warmup or grouped else []
    window_starts = jnp.array([start for start, _ in windows], dtype=int)
    window_stops = jnp.array([stop for _, stop in windows], dtype=int)
    moments_init, moments_update, moments_final = welford_covariance(diagonal=not dense)
    adapt_init, _ = warmup_adapter(
        num_warmup, adapt_step_size=False, adapt_mass_matrix=False, dense_mass=dense
    )

    def start(keys: jax.Array, args: TableArgs, *, lanes: bool):
        """Return the initial NUTS states of one chain, or with ``lanes`` of many."""
        lift = _lift(lanes)
        key_search, key_laplace, key_run = jnp.unstack(
            lift(lambda key: jax.random.split(key, 3))(keys), axis=-2
        )
        lane_args = jax.tree.map(lambda a: a[0], args) if lanes else args
        shapes = _flat_layout(model, lane_args)[0]
        size = sum(int(np.prod(shape)) for shape in shapes.values())
        layout = layout_of(lane_args) if grouped else None
        if not laplace_warmup:
            laplace = None
        elif grouped:
            laplace = mass.grouped_laplace(layout)
        else:
            laplace = dense_laplace(size)

        # One draw for the whole flat vector, not one per site: each random draw is a loop of its
        # own in the compiled program (benchmarks/README.md, the Chinchilla fit's compilation).
        def draw_point(key: jax.Array) -> jax.Array:
            return jax.random.uniform(key, (size,), minval=-INIT_RADIUS, maxval=INIT_RADIUS)

        def energy_and_grad(flat: jax.Array) -> tuple[jax.Array, jax.Array]:
            lane = jax.value_and_grad(potential, argnums=1)
            if lanes:
                return jax.vmap(lane)(args, flat)
            # One chain, unbatched: a batched copy of the gradient compiles slower.
            energy, grad = lane(args, flat[0])
            return energy[None], grad[None]

        # `find_starts` takes a leading chain axis; one chain gets an axis of length 1.
        batch = (lambda a: a) if lanes else (lambda a: a[None])
        starts = find_starts(
            batch(key_search),
            batch(key_laplace),
            draw_point,
            energy_and_grad,
            laplace=laplace,
        )
        if not lanes:
            starts = jax.tree.map(lambda a: a[0], starts)

        def init(z, energy, grad, approximation, key, table_args):
            reference = None
            if relative_to_point(table_args):
                reference, energy = terms_at(table_args, z), jnp.zeros_like(energy)
            normal = None
            if grouped:
                normal = mass.standard_normal(layout) if approximation is None else approximation
                # The same point in the Normal's coordinates; the gradient there is A^T grad.
                y = mass.to_standard(normal, layout, z)
                _, pull_back = jax.vjp(functools.partial(mass.from_standard, normal, layout), y)
                z, grad = y, pull_back(grad)[0]
                inverse_mass = jnp.ones(size)
            elif approximation is None:
                inverse_mass = None  # NumPyro's identity, adapted
            else:
                inverse_mass = approximation.covariance
                if not dense:
                    inverse_mass = jnp.diag(inverse_mass)
            state = init_kernel(
                ParamInfo(z, energy, grad),
                num_warmup,
                inverse_mass_matrix=inverse_mass,
                adapt_mass_matrix=not (laplace_warmup or grouped),
                dense_mass=dense,
                target_accept_prob=config["target_accept_prob"],
                max_tree_depth=config["max_tree_depth"],
                model_args=(table_args, normal, reference),
                rng_key=key,
            )
            return state, normal, reference

        state, normal, reference = lift(init)(
            starts.z, starts.energy, starts.grad, starts.approximation, key_run, args
        )
        # Window moments (a d x d matrix per lane when dense) only where windows use them.
        if not windows:
            moments = ()
        elif grouped:
            moments = lift(lambda _: mass.moments_init(layout))(keys)
        else:
            moments = lift(lambda _: moments_init(size))(keys)
        return state, starts.found, moments, normal, reference

    def retune(state: HMCState, moments: tuple, normal: None, reference, table_args: TableArgs):
        """Mass matrix from the window's draws; step-size adaptation restarts.

        The window's covariance gets Stan's regularisation (a small diagonal floor; without
        it near-singular posteriors, such as a power law's amplitude, offset and exponent over
        few decades, gave many times more divergent transitions) and is shrunk toward the
        current matrix (at first the Laplace one) with weight n / (n + d) for n draws in d
        dimensions: 25 to 500 draws do not estimate a d x d covariance alone at many groups,
        while at few dimensions the earlier matrices fade within a few windows.
        """
        adapt = state.adapt_state
        previous = adapt.inverse_mass_matrix
        count = moments[2]
        weight = count / (count + previous.shape[-1])
        window = moments_final(moments, regularize=True)[0]
        inverse_mass = weight * window + (1 - weight) * previous
        fresh = adapt_init(
            (state.z,), adapt.rng_key, adapt.step_size, inverse_mass_matrix=inverse_mass
        )
        state = state._replace(adapt_state=fresh._replace(window_idx=adapt.window_idx))
        return state, moments_init(previous.shape[-1]), normal, reference

    def retune_grouped(
        state: HMCState,
        moments: mass.GroupedMoments,
        normal: mass.GroupedNormal,
        reference: density.Terms,
        table_args: TableArgs,
    ):
        """`retune` for ``dense_mass="groups"``: a new Normal, and the point in its coordinates.

        The Normal comes from the window's draws and the curvature at their mean
        (`mass.from_moments`); the chain stays at the same point, and its potential's gradient
        is taken in the new coordinates.
        """
        layout = layout_of(table_args)
        z = mass.from_standard(normal, layout, state.z)
        products = hessian_products(
            functools.partial(jax.grad(potential, argnums=1), table_args),
            moments.mean,
            jnp.asarray(mass.curvature_directions(layout)),
        )
        coefficients = mass.curvature_coefficients(products, layout, normal.coefficients)
        normal = mass.from_moments(moments, normal, layout, coefficients)
        y = mass.to_standard(normal, layout, z)
        energy, grad = jax.value_and_grad(nuts_potential, argnums=3)(
            table_args, normal, reference, y
        )
        adapt = state.adapt_state
        fresh = adapt_init(
            (y,), adapt.rng_key, adapt.step_size, inverse_mass_matrix=adapt.inverse_mass_matrix
        )
        state = state._replace(
            z=y,
            z_grad=grad,
            potential_energy=energy,
            adapt_state=fresh._replace(window_idx=adapt.window_idx),
        )
        return state, mass.moments_init(layout), normal, reference

    def window_update(state: HMCState, moments: tuple, normal, table_args: TableArgs):
        """Add the chain's point to the window's moments."""
        if not grouped:
            return moments_update(state.z, moments)
        layout = layout_of(table_args)
        return mass.moments_update(mass.from_standard(normal, layout, state.z), moments, layout)

    def finish(z: jax.Array, table_args: TableArgs):
        unravel = _flat_layout(model, table_args)[1]
        latent = jax.vmap(lambda draw: constrain_fn(model, table_args, {}, unravel(draw)))(z)
        x, codes, log_y, loc = table_args
        spec = spec_for(loc)
        # All draws at once: batching them with `lax.map` tripled the program's temporary
        # buffers at 1,000 groups (0.548 GB against 0.145 GB, benchmarks/README.md).
        loglik = jax.vmap(lambda draw: spec.log_likelihood(draw, x, codes, log_y))(latent)
        return jax.vmap(spec.parameter_values)(latent), loglik

    def run(keys: jax.Array, args: TableArgs, *, lanes: bool) -> tuple:
        """Run one chain, or with ``lanes`` many in lockstep along a leading axis.

        The lane axis stays inside the loop (a vmapped kernel): batching a whole loop of nested
        NUTS loops costs many times more to trace.
        """
        lift = _lift(lanes)
        state, started, moments, normal, reference = start(keys, args, lanes=lanes)
        # Chains in this process: the lanes here, or one per device under `jax.pmap`.
        num_chains = keys.shape[0] if lanes else lax.axis_size(_CHAINS)
        release_memory = num_chains * args[1].shape[-1] >= RELEASE_MEMORY_MIN_RUNS

        def step(carry, i):
            state, moments, normal, reference = carry
            if progress or release_memory:
                chain = jnp.zeros((), int) if lanes else lax.axis_index(_CHAINS)
                _check_in(i, chain, total, release_memory=release_memory)
            state = lift(lambda s, a, n, r: sample_kernel(s, model_args=(a, n, r)))(
                state, args, normal, reference
            )
            if relative_to_point(args):
                state, reference = lift(rebase)(state, normal, args)
            if windows:
                in_window = jnp.any((i >= window_starts) & (i < window_stops))
                moments = lax.cond(
                    in_window, lift(window_update), lambda s, m, *_: m, state, moments, normal, args
                )
                state, moments, normal, reference = lax.cond(
                    jnp.any(i == window_stops - 1),
                    lift(retune_grouped if grouped else retune),
                    lambda *c: c[:4],
                    state,
                    moments,
                    normal,
                    reference,
                    args,
                )
            carry = (state, moments, normal, reference)
            return carry, (state.z, state.diverging, state.num_steps)

        (last, _, normal, _), (z, diverging, num_steps) = lax.scan(
            step, (state, moments, normal, reference), jnp.arange(total)
        )
        z, diverging, num_steps = jax.tree.map(
            lambda a: jnp.moveaxis(a[num_warmup:], 0, int(lanes)), (z, diverging, num_steps)
        )
        if grouped:
            # Draws back from the last Normal's coordinates, which sampling kept.
            def to_points(normal, y, table_args):
                layout = layout_of(table_args)
                return jax.vmap(lambda draw: mass.from_standard(normal, layout, draw))(y)

            z = lift(to_points)(normal, z, args)
        values, loglik = lift(finish)(z, args)
        step_size = last.adapt_state.step_size
        return values, diverging, num_steps, step_size, loglik, started

    if parallel:
        # One table, one chain per device: chains advance independently.
        chains = jax.pmap(functools.partial(run, lanes=False), _CHAINS, in_axes=(0, None))
        compiled = {}

        def run_parallel(keys, args):
            keys, table_args = keys[0], jax.tree.map(lambda a: a[0], args)
            shapes = str(jax.tree.map(lambda a: (a.shape, a.dtype), (keys, table_args)))
            if shapes not in compiled:
                run_iterations = table_args[1].shape[-1] * total
                options = parallel_compiler_options(jax.default_backend(), run_iterations)
                compiled[shapes] = compile_with(chains.lower(keys, table_args), options)
            out = compiled[shapes](keys, table_args)
            return jax.tree.map(lambda a: np.asarray(a)[None], out)

        run_parallel.compiled = compiled  # per argument shapes, for inspection
        return run_parallel

    @jax.jit
    def run_vectorised(keys, args):
        num_tables, num_chains = keys.shape[:2]
        lane_args = jax.tree.map(lambda a: jnp.repeat(a, num_chains, axis=0), args)
        lane_keys = keys.reshape(num_tables * num_chains, *keys.shape[2:])
        out = run(lane_keys, lane_args, lanes=True)
        return jax.tree.map(lambda a: a.reshape(num_tables, num_chains, *a.shape[1:]), out)

    return run_vectorised


def parallel_compiler_options(backend: str, run_iterations: int) -> dict[str, Any]:
    """XLA options for the program of chains on separate CPU devices.

    ``run_iterations`` is the number of runs times the iterations of each chain, a measure of
    the program's sampling work.

    No YNNPACK fusions: jaxlib 0.10.2 and later fuse some CPU operations into YNNPACK kernels,
    whose thread pool held memory for each task it ran until the program returned: a fit of
    10,000 groups grew by about 8 MB per iteration, more than 2,000 iterations could afford on
    a 23 GB machine, and stayed flat without them at the same speed. Vectorised programs keep
    them: 1,000 batched fits took 505.1 s without them (benchmarks/README.md).

    Programs with at most `LEGACY_EMITTERS_MAX_RUN_ITERATIONS` use XLA's older fusion emitters:
    where sampling is short, compiling dominates a cold fit.
    """
    if backend != "cpu":
        return {}
    options: dict[str, Any] = {}
    if _jaxlib_version() >= (0, 10, 2):
        options["xla_cpu_experimental_ynn_fusion_type"] = ""
    if run_iterations <= LEGACY_EMITTERS_MAX_RUN_ITERATIONS:
        options["xla_cpu_use_fusion_emitters"] = False
    return options


def compile_with(lowered: jax.stages.Lowered, options: dict[str, Any]) -> jax.stages.Compiled:
    """Compile ``lowered`` with ``options``, leaving out any this jaxlib does not know."""
    try:
        return lowered.compile(options)
    except jax.errors.JaxRuntimeError as error:
        unknown = re.search(r"No such compile option: '(\w+)'", str(error))
        if unknown is None or unknown[1] not in options:
            raise
        return compile_with(lowered, {k: v for k, v in options.items() if k != unknown[1]})


def _jaxlib_version() -> tuple[int, ...]:
    """Return the installed jaxlib's (major, minor, patch)."""
    return tuple(int(part) for part in re.findall(r"\d+", jaxlib.version.__version__)[:3])


def _lift(lanes: bool) -> Callable[[Callable], Callable]:
    """`jax.vmap` where a leading lane axis is present, else the function itself."""
    return jax.vmap if lanes else lambda fn: fn


def _mass_matrix_windows(num_warmup: int) -> list[tuple[int, int]]:
    """Warmup iterations [start, stop) whose draws re-estimate the mass matrix, in order.

    NumPyro's (and Stan's) doubling windows between its initial and final step-size buffers;
    none when warmup is too short for them.
    """
    schedule = build_adaptation_schedule(num_warmup)
    return [(w.start, w.end + 1) for w in schedule[1:-1] if w.end + 1 - w.start >= 2]


def _flat_layout(
    model: Callable, table_args: TableArgs
) -> tuple[dict[str, tuple[int, ...]], Callable[[jax.Array], dict[str, jax.Array]]]:
    """Unconstrained shape of every latent site, and the map from one flat vector to the sites.

    The flat vector concatenates the sites in `jax.flatten_util.ravel_pytree`'s order (sorted
    names); it is what NUTS, the start-up loop and the mass matrices work in.
    """
    shapes = _unconstrained_shapes(model, table_args)
    unravel = ravel_pytree({name: jnp.zeros(shape) for name, shape in shapes.items()})[1]
    return shapes, unravel


def _unconstrained_shapes(model: Callable, table_args: TableArgs) -> dict[str, tuple[int, ...]]:
    """Shape of every latent site on the unconstrained scale, from an abstract trace."""
    supports = {}

    def sites(*args):
        seeded = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_uniform)
        trace = handlers.trace(seeded).get_trace(*args)
        out = {}
        for name, site in trace.items():
            if site["type"] == "sample" and not site["is_observed"]:
                supports[name] = site["fn"].support
                out[name] = site["value"]
        return out

    values = jax.eval_shape(sites, *table_args)
    return {
        name: tuple(biject_to(supports[name]).inverse_shape(v.shape)) for name, v in values.items()
    }


class _Progress:
    """A progress bar that the compiled programs update through `_check_in`.

    Chains on separate devices move at their own pace; the bar shows the slowest one's
    iteration, so it is full when the last chain is done.
    """

    current: _Progress | None = None

    def __init__(self, total: int, chains: int, *, enabled: bool) -> None:
        self.total, self.chains, self.enabled = total, chains, enabled
        self.bar: tqdm | None = None
        self.done: dict[int, int] = {}

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.bar = tqdm(total=self.total, desc="sampling (compiling first)")
            _Progress.current = self
        return self

    def __exit__(self, *exc) -> None:
        _Progress.current = None
        if self.bar is not None:
            self.bar.close()

    def check_in(self, chain: int, iterations: int) -> None:
        """Record that ``chain`` has run ``iterations``; move the bar to the slowest chain."""
        self.done[chain] = max(iterations, self.done.get(chain, 0))
        self.bar.set_description("sampling")
        slowest = min(self.done.values()) if len(self.done) == self.chains else 0
        if slowest > self.bar.n:
            self.bar.update(slowest - self.bar.n)


def _check_in(i: jax.Array, chain: jax.Array, total: int, *, release_memory: bool) -> None:
    """From inside a program, now and then: update the progress bar, release free heap.

    Chain ``chain`` reports iteration ``i + 1`` of ``total`` to the progress bar; with
    ``release_memory`` the C heap's free pages go back to the system (`bayescale._heap`).
    """

    def check_in(i, chain) -> None:
        if release_memory:
            release_free_memory()
        progress = _Progress.current
        if progress is not None:
            progress.check_in(int(chain), int(i))

    every = max(1, total // CHECK_INS)
    due = (i % every == 0) | (i == total - 1)
    lax.cond(due, lambda: jax.debug.callback(check_in, i + 1, chain), lambda: None)
