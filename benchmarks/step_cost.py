"""Benchmark: what one gradient and one NUTS leapfrog step cost, each in two forms.

Two probes behind choices in bayescale's sampler, each timed side by side in one process:

* **Law as a sum or as a log-sum-exp.** The value and gradient of the model's potential
  (Chinchilla law, Student-t noise, E, A, B partially pooled over `speed.py`'s simulated groups
  of 30 runs), 2,000 evaluations in one compiled loop. The law's terms are summed (bayescale's
  form) or combined by a log-sum-exp (its earlier form, registered here as a user law). Both are
  compiled first, then timed alternately, five times each.
* **NUTS state as one flat vector or as a dictionary of sites.** NumPyro's NUTS on a trivial
  potential (``0.5 |z|^2``) of the 100-group model's size (310 dimensions), fixed step size 0.3,
  500 iterations on one device. The state is one vector (bayescale's form) or 13 sites (3 of
  100 values, 10 scalars) like the model's, with a diagonal and with a dense mass matrix.

The first probe is also timed in one stream and in one stream per JAX device at once (4 on this
2-core machine, as the fit's 4 chains): how much slower each evaluation gets when the chains
share the cores and their caches.

Run from the repository root::

    python benchmarks/step_cost.py
    python benchmarks/step_cost.py --groups 1 10 100
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer.hmc import hmc
from numpyro.infer.util import ParamInfo, potential_energy
from speed import simulated_problem

import bayescale as bs
from bayescale.inference import _law_inputs
from bayescale.laws import LAWS, register_law
from bayescale.sampler import _flat_layout, compile_with, parallel_compiler_options

EVALUATIONS = 2000
REPEATS = 5
NUTS_ITERATIONS = 500
NUTS_STEP_SIZE = 0.3
GROUP_SIZE = 100
SCALAR_SITES = 10
VECTOR_SITES = 3
WARMUP_AND_DRAWS = ("num_warmup", "num_samples")


def log_sum_exp_predict(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    """The Chinchilla law as a log-sum-exp of its terms (bayescale's earlier form)."""
    terms = jnp.stack(
        jnp.broadcast_arrays(
            jnp.log(params["E"]),
            jnp.log(params["A"]) - params["alpha"] * x["params"],
            jnp.log(params["B"]) - params["beta"] * x["tokens"],
        )
    )
    return jnp.exp(jax.nn.logsumexp(terms, axis=0))


LOG_SUM_EXP_LAW = dataclasses.replace(
    LAWS["chinchilla"], name="chinchilla_log_sum_exp", predict=log_sum_exp_predict
)


def gradient_loop(
    law: str, groups: int, streams: int = 1, *, fit_options: bool = False
) -> Callable[[], float]:
    """Compile a loop of value-and-gradient evaluations; return a timer (us per evaluation).

    With ``streams`` > 1 the loop runs once per device on that many devices at the same time,
    as the fit's chains do, and the timer gives the wall time per evaluation of all of them.
    With ``fit_options`` it is compiled with the XLA options of a default fit of that table
    (`bayescale.sampler.parallel_compiler_options`).
    """
    problem = simulated_problem(groups)
    model = bs.ScalingModel(law, group=problem.group, noise="student_t")
    spec, data = model.specify(problem.frame)
    x = {k: jnp.asarray(v) for k, v in _law_inputs(spec, data).items()}
    codes, log_y = jnp.asarray(data.codes), jnp.asarray(np.log(data.y))

    def numpyro_model() -> None:
        spec.numpyro_model(x, codes, log_y)

    shapes, unravel = _flat_layout(numpyro_model, ())
    start = jnp.full(sum(int(np.prod(s)) for s in shapes.values()), 0.1)

    def loop(z: jax.Array) -> jax.Array:
        def body(_, z):
            grad = jax.grad(lambda f: potential_energy(numpyro_model, (), {}, unravel(f)))(z)
            return z - 1e-9 * grad

        return jax.lax.fori_loop(0, EVALUATIONS, body, z)

    if streams > 1:
        start = jnp.broadcast_to(start, (streams, *start.shape))
        lowered = jax.pmap(loop, devices=jax.devices()[:streams]).lower(start)
    else:
        lowered = jax.jit(loop).lower(start)
    options = {}
    if fit_options:
        iterations = sum(bs.ScalingModel.default_sampler_config[k] for k in WARMUP_AND_DRAWS)
        options = parallel_compiler_options(jax.default_backend(), len(log_y) * iterations)
    compiled = compile_with(lowered, options)
    jax.block_until_ready(compiled(start))  # the first call's set-up, untimed

    def timer() -> float:
        begin = time.perf_counter()
        jax.block_until_ready(compiled(start))
        return 1e6 * (time.perf_counter() - begin) / EVALUATIONS

    return timer


def nuts_step_cost(state: dict[str, jax.Array], dense: bool) -> float:
    """us per leapfrog step of NumPyro's NUTS on ``0.5 |z|^2`` with ``state``'s structure."""

    def potential(z: dict[str, jax.Array]) -> jax.Array:
        return 0.5 * sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(z))

    size = sum(leaf.size for leaf in jax.tree.leaves(state))
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    @jax.jit
    def run(key: jax.Array) -> jax.Array:
        initial = init_kernel(
            ParamInfo(state, potential(state), state),
            0,
            step_size=NUTS_STEP_SIZE,
            inverse_mass_matrix=jnp.eye(size) if dense else jnp.ones(size),
            adapt_step_size=False,
            adapt_mass_matrix=False,
            dense_mass=dense,
            rng_key=key,
        )

        def body(current, _):
            current = sample_kernel(current)
            return current, current.num_steps

        return jax.lax.scan(body, initial, None, length=NUTS_ITERATIONS)[1]

    key = jax.random.PRNGKey(0)
    jax.block_until_ready(run(key))
    begin = time.perf_counter()
    steps = jax.block_until_ready(run(key))
    return 1e6 * (time.perf_counter() - begin) / int(steps.sum())


def main() -> None:
    """Print both probes' tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", type=int, default=[1, 100])
    args = parser.parse_args()
    register_law(LOG_SUM_EXP_LAW, overwrite=True)
    print("## Cost of one gradient and one NUTS step\n")
    print(f"- machine: {platform.platform()}, JAX devices: {jax.devices()}")
    print(f"- versions: jax {jax.__version__}, bayescale {bs.__version__}\n")
    print(f"### Value and gradient of the potential, us per evaluation ({REPEATS} timings)\n")
    print("| groups | runs | law summed | law as log-sum-exp |")
    print("|---:|---:|---|---|")
    for groups in args.groups:
        timers = {law: gradient_loop(law, groups) for law in ("chinchilla", LOG_SUM_EXP_LAW.name)}
        times = {law: [] for law in timers}
        for _ in range(REPEATS):
            for law, timer in timers.items():
                times[law].append(timer())
        cells = [" ".join(f"{t:.1f}" for t in times[law]) for law in timers]
        print(f"| {groups} | {30 * groups} | {cells[0]} | {cells[1]} |")
    streams = len(jax.devices())
    print(f"\n### The same, law summed, in 1 and in {streams} streams at once, one per device")
    print("(compiled with the XLA options of a default fit of each table)\n")
    print(f"| groups | runs | 1 stream | {streams} streams | ratio of means |")
    print("|---:|---:|---|---|---:|")
    for groups in args.groups:
        timers = [gradient_loop("chinchilla", groups, n, fit_options=True) for n in (1, streams)]
        times = [[], []]
        for _ in range(REPEATS):
            for timer, timed in zip(timers, times, strict=True):
                timed.append(timer())
        cells = [" ".join(f"{t:.1f}" for t in timed) for timed in times]
        ratio = np.mean(times[1]) / np.mean(times[0])
        print(f"| {groups} | {30 * groups} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    print("\n### NumPyro NUTS on a trivial 310-dimensional potential, us per leapfrog step\n")
    flat = {"z": jnp.zeros(VECTOR_SITES * GROUP_SIZE + SCALAR_SITES)}
    sites = {f"v{i}": jnp.zeros(GROUP_SIZE) for i in range(VECTOR_SITES)}
    sites |= {f"s{i}": jnp.zeros(()) for i in range(SCALAR_SITES)}
    print("| mass matrix | one flat vector | 13 sites |")
    print("|---|---:|---:|")
    for dense in (False, True):
        flat_cost, sites_cost = nuts_step_cost(flat, dense), nuts_step_cost(sites, dense)
        print(f"| {'dense' if dense else 'diagonal'} | {flat_cost:.1f} | {sites_cost:.1f} |")


if __name__ == "__main__":
    main()
