"""Observation noise models on the log of the response, with their parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import scipy.stats

from bayescale.laws import Param, Prior

SIGMA = Param(
    support="positive",
    prior=Prior(math.log(0.05), 1.5),
    pooling="shared",
    reason=(
        "sd of log loss between a run and the law (seed-to-seed and read-off noise): median "
        "5%, 95% between 0.3% and 95%."
    ),
)
NU = Param(
    support="positive",
    prior=Prior(math.log(9.0), 1.0),
    pooling="shared",
    lower=1.0,
    reason=(
        "Student-t degrees of freedom, above 1: median 10, 95% between 2.3 and 65, so the data "
        "can choose between heavy tails (outlying runs) and near-Normal noise. Below 1 the noise "
        "has no mean, and a chain can settle on a law far from most runs, calling them outliers."
    ),
)

NOISE_PARAMS: dict[str, dict[str, Param]] = {
    "lognormal": {"sigma": SIGMA},
    "student_t": {"sigma": SIGMA, "nu": NU},
}
NOISES: tuple[str, ...] = tuple(NOISE_PARAMS)


def distribution(noise: str, log_mean: jax.Array, params: Mapping[str, jax.Array]):
    """NumPyro distribution of ``log(response)`` around ``log_mean``."""
    if noise == "lognormal":
        return dist.Normal(log_mean, params["sigma"])
    return StudentT(params["nu"], log_mean, params["sigma"])


class StudentT(dist.StudentT):
    """NumPyro's Student-t, with a normalising constant that float32 keeps smooth in ``df``.

    NumPyro's takes log Gamma((df + 1) / 2) - log Gamma(df / 2) as the difference of two
    values near 58 at df = 50, where float32 resolves 3.8e-6; that error is the same in every
    run, so summed over 12,000 runs the log density jumped by 0.057 nats (sd) between values of
    df 1e-5 apart, and NUTS could not reach its target acceptance at any step size. With
    `log_gamma_ratio` the jumps are 0.0019 nats (`benchmarks/student_t_rounding.py`).
    """

    def log_prob(self, value: jax.Array) -> jax.Array:
        """Log density at ``value``."""
        y = (value - self.loc) / self.scale
        normaliser = (
            jnp.log(self.scale) + 0.5 * jnp.log(self.df * jnp.pi) - log_gamma_ratio(0.5 * self.df)
        )
        return -0.5 * (self.df + 1.0) * jnp.log1p(y**2 / self.df) - normaliser


# `log_gamma_ratio` shifts its argument up by this much before the asymptotic series, which then
# truncates at under 1e-10 (8.3e-11 at x = 0.5, computed in float64 against SciPy).
RATIO_SHIFT = 10


def log_gamma_ratio(x: jax.Array) -> jax.Array:
    """Return log Gamma(x + 1/2) - log Gamma(x) for x > 0, to a few float32 rounding errors.

    The asymptotic series 1/2 log y - 1/(8 y) + 1/(192 y^3) - 1/(640 y^5) at y = x +
    `RATIO_SHIFT`, less log(1 + 1/(2 (x + k))) for k below the shift (Gamma(x + 1) = x Gamma(x)).
    """
    y = x + RATIO_SHIFT
    inverse = 1.0 / y
    inverse_sq = inverse * inverse
    series = 0.5 * jnp.log(y) - inverse * (1 / 8 - inverse_sq * (1 / 192 - inverse_sq / 640))
    steps = jnp.arange(RATIO_SHIFT, dtype=y.dtype)
    return series - jnp.sum(jnp.log1p(0.5 / (x[..., None] + steps)), axis=-1)


def draw(
    noise: str, rng: np.random.Generator, mean: np.ndarray, params: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Draw responses around ``mean`` (one per element), for posterior predictive forecasts."""
    if noise == "lognormal":
        eps = rng.standard_normal(mean.shape)
    else:
        eps = rng.standard_t(np.broadcast_to(params["nu"], mean.shape))
    return mean * np.exp(params["sigma"] * eps)


def cdf(
    noise: str, value: np.ndarray, mean: np.ndarray, params: Mapping[str, np.ndarray]
) -> np.ndarray:
    """P(response <= value) given the law's mean and the noise parameters, per element."""
    z = (np.log(value) - np.log(mean)) / params["sigma"]
    if noise == "lognormal":
        return scipy.stats.norm.cdf(z)
    return scipy.stats.t.cdf(z, df=params["nu"])
