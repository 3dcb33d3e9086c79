"""Observation noise models on the log of the response, with their parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
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
    return dist.StudentT(params["nu"], log_mean, params["sigma"])


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
