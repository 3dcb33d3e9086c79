"""A NumPyro model's log density as terms, element by element, and potentials summed from them.

float32 resolves about seven significant digits. Near the posterior of 300,000 runs the log
density is about 8e5 nats, where float32 numbers lie 0.0625 apart, so a potential summed in
float32 carries a few hundredths of a nat of rounding that moves with the parameters. NUTS
accepts on energy differences; with that noise in them its adapted step size at 10,000 groups
was smaller than in float64 and most chains needed twice the gradient evaluations per draw
(benchmarks/README.md, "float32 rounding of the potential"). `relative_potential` sums each
term's difference from its value at a reference point, so near that point the potential is near
zero, where float32 numbers lie far closer together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpyro
from numpyro import handlers
from numpyro.distributions import Independent, constraints
from numpyro.distributions.transforms import biject_to

Terms = dict[str, jax.Array]


def log_density_terms(model: Callable, model_args: tuple, params: Mapping[str, jax.Array]) -> Terms:
    """Log density of every sample site of ``model`` at unconstrained ``params``, unsummed.

    Each latent site's value is mapped from the unconstrained scale to its support, and the log
    Jacobian of that map is a site of its own (``_<name>_log_det``), as in
    `numpyro.infer.util.potential_energy`: the terms sum to minus that potential. Sites with
    event dimensions are split into their elements, so no term is itself a long sum.
    """

    def unconstrain(site: dict) -> jax.Array | None:
        if site["type"] != "sample" or site["name"] not in params:
            return None
        unconstrained = params[site["name"]]
        support = site["fn"].support
        if _is_real(support):
            return unconstrained
        transform = biject_to(support)
        value = transform(unconstrained)
        numpyro.factor(
            f"_{site['name']}_log_det", transform.log_abs_det_jacobian(unconstrained, value)
        )
        return value

    substituted = handlers.substitute(model, substitute_fn=unconstrain)
    trace = handlers.trace(substituted).get_trace(*model_args)
    terms = {}
    for name, site in trace.items():
        if site["type"] != "sample":
            continue
        fn = site["fn"]
        while isinstance(fn, Independent):
            fn = fn.base_dist
        log_prob = fn.log_prob(site["value"])
        if site["scale"] is not None:
            log_prob = site["scale"] * log_prob
        terms[name] = log_prob
    return terms


def potential(terms: Terms) -> jax.Array:
    """Minus the log density: the negative sum of ``terms``."""
    return -sum((jnp.sum(term) for term in terms.values()), start=jnp.zeros(()))


def relative_potential(terms: Terms, reference: Terms) -> jax.Array:
    """`potential` minus its value at the point where the terms were ``reference``.

    Each term's difference is taken before any sum, so the result is exact to float32 rounding
    of the differences, not of the two potentials.
    """
    return -sum((jnp.sum(terms[name] - reference[name]) for name in terms), start=jnp.zeros(()))


def _is_real(support: constraints.Constraint) -> bool:
    if isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real
