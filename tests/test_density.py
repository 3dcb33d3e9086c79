"""Log density terms: they sum to NumPyro's potential, and a relative potential keeps precision."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from conftest import GROUPED_FIT, GROUPED_POOLING
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.infer import init_to_uniform
from numpyro.infer.util import potential_energy

from bayescale import ScalingModel, density, sampler
from bayescale.density import log_density_terms, potential, relative_potential
from bayescale.inference import _law_inputs
from bayescale.sampler import _flat_layout


def _table_args(spec, data):
    x = {name: jnp.asarray(values) for name, values in _law_inputs(spec, data).items()}
    loc = jnp.asarray([spec.priors[n].loc for n in spec.params])
    return x, jnp.asarray(data.codes), jnp.asarray(np.log(data.y)), loc


def _constrained_sites(model, args) -> set[str]:
    """Latent sites whose support is not the real line (their values pass through a map)."""
    constrained = set()

    def record(*args):  # traced abstractly: no values, so no checks of them
        seeded = handlers.substitute(handlers.seed(model, 0), substitute_fn=init_to_uniform)
        for name, site in handlers.trace(seeded).get_trace(*args).items():
            if site["type"] == "sample" and not site["is_observed"]:
                support = site["fn"].support
                if isinstance(support, constraints.independent):
                    support = support.base_constraint
                if support is not constraints.real:
                    constrained.add(name)

    jax.eval_shape(record, *args)
    return constrained


@pytest.mark.parametrize(
    "kwargs",
    [
        {"law": "power", "x": "params", "noise": "lognormal"},
        {"law": "chinchilla", "noise": "student_t"},
        {"law": "chinchilla", "group": "task", "noise": "student_t"},
        {"law": "chinchilla", "group": "task", "pooling": {"E": "independent", "A": "shared"}},
    ],
)
def test_terms_sum_to_numpyros_potential(runs, kwargs):
    spec, data = ScalingModel(**kwargs).specify(runs)
    args = _table_args(spec, data)

    def model(x, codes, log_y, loc):
        spec.numpyro_model(x, codes, log_y)

    shapes, unravel = _flat_layout(model, args)
    size = sum(int(np.prod(s)) for s in shapes.values())
    for seed in range(3):
        params = unravel(jax.random.uniform(jax.random.PRNGKey(seed), (size,), minval=-1, maxval=1))
        terms = log_density_terms(model, args, params)
        expected = potential_energy(model, args, {}, params)
        assert float(potential(terms)) == pytest.approx(float(expected), rel=1e-5, abs=1e-3)
        # Every site with a constrained support, and only those, brings its log Jacobian.
        log_dets = {n[1 : -len("_log_det")] for n in terms if n.endswith("_log_det")}
        assert log_dets == _constrained_sites(model, args)
    if "group" in kwargs:
        assert log_dets  # the groups' spreads (tau) are positive


def test_relative_potential_resolves_what_a_large_sum_rounds_away():
    """300,000 Normal terms of about +3 nats: differences of 1e-3 nats between nearby points."""
    log_y = jnp.asarray(np.random.default_rng(0).normal(0.0, 0.015, 300_000), dtype=jnp.float32)

    def model(log_y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        with numpyro.plate("runs", log_y.shape[0]):
            numpyro.sample("y", dist.Normal(mu, 0.015), obs=log_y)

    terms_at = jax.jit(lambda mu: log_density_terms(model, (log_y,), {"mu": mu}))
    reference = terms_at(jnp.float32(0.0))
    # float64 potentials on the host, from the same data.
    y64 = np.asarray(log_y, dtype=np.float64)

    def exact(mu: float) -> float:
        normal = -0.5 * ((y64 - mu) / 0.015) ** 2 - np.log(0.015) - 0.5 * np.log(2 * np.pi)
        return -(normal.sum() - 0.5 * mu**2 - 0.5 * np.log(2 * np.pi))

    relative_errors, plain_errors = [], []
    for step in np.linspace(1e-6, 2e-5, 20):
        mu = np.float32(step)
        truth = exact(float(mu)) - exact(0.0)
        terms = terms_at(jnp.float32(mu))
        relative_errors.append(float(relative_potential(terms, reference)) - truth)
        plain_errors.append(float(potential(terms)) - float(potential(reference)) - truth)
    assert max(map(abs, relative_errors)) < 1e-3
    assert max(map(abs, plain_errors)) > 10 * max(map(abs, relative_errors))


def test_a_fit_on_the_relative_potential_has_the_plain_ones_posterior(
    monkeypatch, gadre_c4_runs, grouped_post
):
    """Tables of `RELATIVE_POTENTIAL_MIN_RUNS` runs or more sample on the relative potential."""
    traced = []

    def spy(terms, reference):
        traced.append(sorted(reference))
        return relative_potential(terms, reference)

    monkeypatch.setattr(density, "relative_potential", spy)
    monkeypatch.setattr(sampler, "RELATIVE_POTENTIAL_MIN_RUNS", len(gadre_c4_runs))
    monkeypatch.setattr(sampler, "_PROGRAMS", {})  # trace anew, with the lower threshold
    model = ScalingModel("power", x="flops", group="dataset", pooling=GROUPED_POOLING)
    relative = model.fit(gadre_c4_runs, **GROUPED_FIT).summary()
    assert traced and "y" in traced[0]
    plain = grouped_post.summary()
    combined_mcse = np.hypot(plain["mcse_mean"], relative["mcse_mean"])
    assert (np.abs(plain["mean"] - relative["mean"]) <= 4 * combined_mcse).all()
