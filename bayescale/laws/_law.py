"""The `Law` spec: named parameters with supports and priors, plus one pure function."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from bayescale.errors import SpecError

Support = Literal["positive", "unit", "real"]
Pooling = Literal["shared", "partial", "independent"]
Coordinate = Literal["log", "linear", "reciprocal"]
SUPPORTS: tuple[str, ...] = ("positive", "unit", "real")
POOLINGS: tuple[str, ...] = ("shared", "partial", "independent")
COORDINATES: tuple[str, ...] = ("log", "linear", "reciprocal")


@dataclasses.dataclass(frozen=True)
class Prior:
    """Normal prior on a parameter's unconstrained value.

    The unconstrained value is ``log(value - lower)`` for a positive parameter (``lower`` is
    0 unless the parameter says otherwise), ``logit(value)`` for one in the unit interval and the
    value itself for a real one; so for a positive parameter this is a LogNormal prior on
    ``value - lower`` with median ``exp(loc)``.

    Parameters
    ----------
    loc : float
        Mean of the unconstrained value.
    scale : float
        Standard deviation of the unconstrained value (> 0).
    """

    loc: float
    scale: float

    def __post_init__(self) -> None:
        if isinstance(self.loc, jax.core.Tracer):
            return  # a prior varied inside a batched fit; checked before tracing
        if not (math.isfinite(self.loc) and math.isfinite(self.scale) and self.scale > 0):
            raise SpecError(
                f"a prior needs a finite loc and a scale > 0; got loc={self.loc}, "
                f"scale={self.scale}."
            )

    @classmethod
    def lognormal(cls, median: float, sd_log: float) -> Prior:
        """Build the prior of a positive parameter from its median and the sd of its log."""
        if not median > 0:
            raise SpecError(f"a LogNormal prior needs median > 0; got {median}.")
        return cls(math.log(median), sd_log)


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a law.

    Parameters
    ----------
    support : {"positive", "unit", "real"}
        Where the parameter lives.
    prior : Prior
        Default prior on the unconstrained value.
    pooling : {"shared", "partial", "independent"}
        Default pooling across groups: what the field usually assumes for this parameter.
    response_units : bool, default False
        True when the parameter is measured in units of the response (offsets, amplitudes at
        the reference scale). Its default prior is then centred on the data's typical response:
        ``prior.loc`` is shifted by ``log(response_ref)``.
    group_sd : float, default 0.5
        Scale of the HalfNormal prior on the relative between-group standard deviation under
        partial pooling (for small spreads, about the sd of the log of the value across groups;
        see docs/model.md for the exact form).
    coordinate : {"log", "linear", "reciprocal"}, default "log"
        Coordinate NUTS moves in, for a positive parameter: its log, the value itself, or its
        reciprocal. It changes the sampler's geometry, never the prior. Offsets and amplitudes
        of a saturating law sample best on the linear scale and exponents as reciprocals: along
        the ridge the data leave free (fixed loss and slope at the reference), ``E``, ``A_ref``
        and ``1/alpha`` move on a straight line, while their logs bend.
    lower : float, default 0.0
        Lower bound of a positive parameter sampled in the log coordinate: the value is
        ``lower + exp(u)`` and the prior is on ``log(value - lower)``.
    reason : str
        Why the default prior is what it is (shown in docs and reports).
    """

    support: Support
    prior: Prior
    pooling: Pooling = "shared"
    response_units: bool = False
    group_sd: float = 0.5
    coordinate: Coordinate = "log"
    lower: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.support not in SUPPORTS:
            raise SpecError(f"support must be one of {SUPPORTS}; got {self.support!r}.")
        if self.coordinate not in COORDINATES:
            raise SpecError(f"coordinate must be one of {COORDINATES}; got {self.coordinate!r}.")
        if self.coordinate != "log" and self.support != "positive":
            raise SpecError(
                f"coordinate {self.coordinate!r} is for positive parameters; this one has "
                f"support {self.support!r}."
            )
        if self.pooling not in POOLINGS:
            raise SpecError(f"pooling must be one of {POOLINGS}; got {self.pooling!r}.")
        if not (math.isfinite(self.lower) and self.lower >= 0.0):
            raise SpecError(f"a lower bound must be finite and >= 0; got {self.lower}.")
        if self.lower != 0.0 and (self.support != "positive" or self.coordinate != "log"):
            raise SpecError(
                f"a lower bound is for positive parameters in the log coordinate; this one has "
                f"support {self.support!r} and coordinate {self.coordinate!r}."
            )

    def from_unconstrained(self, u: jax.Array) -> jax.Array:
        """Return the value at unconstrained ``u``: ``lower + exp(u)``, ``sigmoid(u)`` or ``u``."""
        if self.support == "positive":
            return self.lower + jnp.exp(u)
        if self.support == "unit":
            return jax.nn.sigmoid(u)
        return u


PredictFn = Callable[[Mapping[str, jax.Array], Mapping[str, jax.Array]], jax.Array]


@dataclasses.dataclass(frozen=True)
class Law:
    """A scaling law: inputs, parameters and one pure ``jax.numpy`` mean function.

    ``predict(params, x)`` receives ``x[name] = log(scale / reference)`` for each input and the
    parameters in the *reference convention*: an amplitude listed in ``amplitudes`` is the size
    of its term at the reference scale. The function must broadcast: parameters may carry a
    leading draws axis, so one function serves sampling, forecasts and queries.

    Parameters
    ----------
    name : str
        Registry name.
    inputs : tuple of str
        Scale columns the law reads (``"x"`` for a law of any single scale column).
    params : mapping of str to Param
        The law's parameters, in the papers' symbols.
    predict : callable
        ``predict(params, x) -> mean response``.
    amplitudes : mapping of str to (str, str)
        ``amplitude -> (exponent, input)`` for terms ``A * scale**-exponent``. Reported values
        use the papers' convention ``A_paper = A_ref * reference**exponent``.
    formula : str
        The law in the papers' convention.
    source : str
        Where the law comes from.
    response : {"loss", "metric"}
        The kind of response the law describes.
    """

    name: str
    inputs: tuple[str, ...]
    params: Mapping[str, Param]
    predict: PredictFn
    amplitudes: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    formula: str = ""
    source: str = ""
    response: Literal["loss", "metric"] = "loss"

    def __post_init__(self) -> None:
        if not self.inputs:
            raise SpecError(f"law {self.name!r} needs at least one input scale.")
        for amp, (exponent, scale) in self.amplitudes.items():
            if amp not in self.params or exponent not in self.params:
                raise SpecError(
                    f"law {self.name!r}: amplitude {amp!r} and exponent {exponent!r} must both "
                    f"be parameters; parameters are {list(self.params)}."
                )
            if scale not in self.inputs:
                raise SpecError(
                    f"law {self.name!r}: amplitude {amp!r} refers to input {scale!r}, which is "
                    f"not one of its inputs {list(self.inputs)}."
                )

    def check(self) -> None:
        """Raise `SpecError` unless value and gradient are finite at the prior medians."""
        params = {
            name: p.from_unconstrained(jnp.asarray(p.prior.loc)) for name, p in self.params.items()
        }
        x = {name: jnp.linspace(-3.0, 3.0, 7) for name in self.inputs}

        def total(p: Mapping[str, jax.Array]) -> jax.Array:
            return jnp.sum(self.predict(p, x))

        value, grad = jax.value_and_grad(total)(params)
        grads = np.array([float(g) for g in grad.values()])
        if not (np.isfinite(float(value)) and np.all(np.isfinite(grads))):
            raise SpecError(
                f"law {self.name!r} is not finite at its prior medians (value {float(value)}, "
                f"gradients {dict(zip(grad, grads, strict=True))}); check predict and priors."
            )
