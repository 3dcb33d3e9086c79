r"""Built-in scaling laws.

``power``: saturating power law in one scale column (Hestness et al. 2017, "Deep Learning Scaling
is Predictable, Empirically"; Henighan et al. 2020),

.. math:: L(x) = E + A\,x^{-\alpha}

``chinchilla``: loss against parameters N and training tokens D (Hoffmann et al. 2022,
"Training Compute-Optimal Large Language Models", approach 3),

.. math:: L(N, D) = E + A\,N^{-\alpha} + B\,D^{-\beta}

Each scale enters as ``x = log(scale / reference)`` and each amplitude as its term's size at the
reference scale, so every term is ``A * exp(-alpha * x)``: positive, and of moderate size over
the fitted range. The terms are summed directly: a log-sum-exp of them made the gradient of a
100-group model about 1.5 times as slow (benchmarks/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp

from bayescale.laws._law import Law, Param, Prior

# Default priors, shared by the loss laws below. Response-unit priors are centred on the data's
# typical response (its geometric mean), so the same law works for losses of 0.5 or of 5 nats.
IRREDUCIBLE = Param(
    support="positive",
    prior=Prior(math.log(0.5), 1.0),
    pooling="partial",
    response_units=True,
    coordinate="linear",
    reason=(
        "irreducible loss: median half the typical loss, 95% between 0.07x and 3.5x it; it is "
        "usually a large fraction of observed loss, and the data decide where."
    ),
)
AMPLITUDE = Param(
    support="positive",
    prior=Prior(math.log(0.25), 1.5),
    pooling="partial",
    response_units=True,
    coordinate="linear",
    reason=(
        "size of the reducible term at the reference scale: median a quarter of the typical "
        "loss, sd of 1.5 on the log scale (95% from 1/80x to 5x)."
    ),
)
EXPONENT = Param(
    support="positive",
    prior=Prior(math.log(0.3), 1.0),
    pooling="shared",
    coordinate="reciprocal",
    reason=(
        "power-law exponent: median 0.3, 95% between 0.04 and 2.1, which spans published "
        "exponents (0.05 for loss against compute to about 0.7 for data-limited curves)."
    ),
)


def _power_predict(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    return params["E"] + params["A"] * jnp.exp(-params["alpha"] * x["x"])


POWER = Law(
    name="power",
    inputs=("x",),
    params={"E": IRREDUCIBLE, "A": AMPLITUDE, "alpha": EXPONENT},
    predict=_power_predict,
    amplitudes={"A": ("alpha", "x")},
    formula="L = E + A x^-alpha",
    source="Hestness et al. 2017; Henighan et al. 2020",
)


def _chinchilla_predict(params: Mapping[str, jax.Array], x: Mapping[str, jax.Array]) -> jax.Array:
    return (
        params["E"]
        + params["A"] * jnp.exp(-params["alpha"] * x["params"])
        + params["B"] * jnp.exp(-params["beta"] * x["tokens"])
    )


CHINCHILLA = Law(
    name="chinchilla",
    inputs=("params", "tokens"),
    params={
        "E": IRREDUCIBLE,
        "A": AMPLITUDE,
        "alpha": EXPONENT,
        "B": AMPLITUDE,
        "beta": EXPONENT,
    },
    predict=_chinchilla_predict,
    amplitudes={"A": ("alpha", "params"), "B": ("beta", "tokens")},
    formula="L = E + A N^-alpha + B D^-beta",
    source="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models",
)
