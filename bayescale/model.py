"""`ScalingModel`: a law, pooling across groups, a noise model and priors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints

from bayescale.data import ScalingData, default_scale
from bayescale.errors import SpecError
from bayescale.laws import POOLINGS, Law, Param, Prior, get_law
from bayescale.noise import NOISE_PARAMS, NOISES, distribution

if TYPE_CHECKING:
    from bayescale.posterior import Posterior


def _as_prior(name: str, value: object) -> Prior:
    if isinstance(value, Prior):
        return value
    pair = None
    if isinstance(value, Mapping) and set(value) == {"loc", "scale"}:
        pair = (value["loc"], value["scale"])
    elif isinstance(value, tuple | list) and len(value) == 2:
        pair = tuple(value)
    if pair is not None:
        try:
            return Prior(float(pair[0]), float(pair[1]))
        except (TypeError, ValueError):
            pass
    raise SpecError(
        f"prior for {name!r} must be a Prior, a (loc, scale) pair or {{'loc': ..., 'scale': ...}} "
        f"(Normal on the log of a positive parameter); got {value!r} instead."
    )


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a fitted model, in JSON-friendly values.

    Attributes
    ----------
    law : str
        Registered law name.
    columns : dict of str to str
        Law input -> scale column.
    response : str
        Response column.
    group : str or None
        Group column.
    labels : tuple of str
        Group labels in code order.
    noise : str
        Noise model.
    pooling : dict of str to str
        Pooling of every law and noise parameter.
    priors : dict of str to Prior
        Prior of every parameter on the unconstrained scale, in absolute units.
    group_sd : dict of str to float
        HalfNormal scale of the between-group sd of the log value, per partially pooled
        parameter.
    references : dict of str to float
        Reference scale per column.
    response_ref : float
        Geometric mean of the fitted response.
    """

    law: str
    columns: dict[str, str]
    response: str
    group: str | None
    labels: tuple[str, ...]
    noise: str
    pooling: dict[str, str]
    priors: dict[str, Prior]
    group_sd: dict[str, float]
    references: dict[str, float]
    response_ref: float

    @property
    def law_obj(self) -> Law:
        """The `Law` this spec names."""
        return get_law(self.law)

    @property
    def params(self) -> dict[str, Param]:
        """Law parameters followed by noise parameters."""
        return {**self.law_obj.params, **NOISE_PARAMS[self.noise]}

    def per_group(self, name: str) -> bool:
        """Whether parameter ``name`` takes one value per group."""
        return self.group is not None and self.pooling[name] != "shared"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        out = dataclasses.asdict(self)
        out["labels"] = list(self.labels)
        out["priors"] = {k: [p.loc, p.scale] for k, p in self.priors.items()}
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelSpec:
        """Inverse of `to_dict`."""
        values = dict(values)
        values["labels"] = tuple(values["labels"])
        values["priors"] = {k: Prior(*v) for k, v in values["priors"].items()}
        return cls(**values)

    def digest(self) -> str:
        """SHA-256 of the spec's JSON form, stored with a fit to detect edits."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    # -- the model itself -------------------------------------------------------------------

    def constrain(self, latent: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Map latent draws to parameters (reference convention).

        Shared parameters come back as scalars, per-group ones with a trailing group axis.
        A leading draws axis, when present, is kept.
        """
        out = {}
        for name, param in self.params.items():
            partial = self.group is not None and self.pooling[name] == "partial"
            if param.coordinate == "log" or param.support != "positive":
                prior = self.priors[name]
                if partial:
                    centre = prior.loc + prior.scale * latent[f"{name}_mu_z"]
                    u = centre[..., None] + latent[f"{name}_tau"][..., None] * latent[f"{name}_z"]
                else:
                    u = prior.loc + prior.scale * latent[f"{name}_z"]
                out[name] = param.from_unconstrained(u)
            else:
                t = self._coordinate(name, latent, "_w" if partial else "_v")
                out[name] = _from_coordinate(param.coordinate, t, self._softness(name))
        return out

    def parameter_values(self, latent: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Return every parameter and population centre and spread, from one latent draw."""
        return {**self.constrain(latent), **self.population(latent)}

    def population(self, latent: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
        """Return centre (``<name>_mu``) and spread (``<name>_tau``) of partial parameters."""
        out = {}
        for name, param in self.params.items():
            if not (self.group and self.pooling[name] == "partial"):
                continue
            if param.coordinate == "log" or param.support != "positive":
                prior = self.priors[name]
                centre = prior.loc + prior.scale * latent[f"{name}_mu_z"]
                out[f"{name}_mu"] = param.from_unconstrained(centre)
            else:
                t = self._coordinate(name, latent, "_mu_v")
                out[f"{name}_mu"] = _from_coordinate(param.coordinate, t, self._softness(name))
            out[f"{name}_tau"] = latent[f"{name}_tau"]
        return out

    def _prior_centre(self, name: str) -> jax.Array:
        """Prior median of a parameter, in its sampling coordinate."""
        median = jnp.exp(self.priors[name].loc)
        return 1.0 / median if self.params[name].coordinate == "reciprocal" else median

    def _softness(self, name: str) -> jax.Array:
        return _SOFTNESS * self._prior_centre(name)

    def _coordinate(self, name: str, latent: Mapping[str, jax.Array], suffix: str) -> jax.Array:
        """Return the sampling coordinate of latent ``<name><suffix>`` (prior median at 0)."""
        return self._prior_centre(name) * (1 + latent[f"{name}{suffix}"])

    def _lognormal_log_density(
        self, name: str, t: jax.Array, loc: jax.Array, scale: jax.Array
    ) -> jax.Array:
        """Log density of ``log value ~ Normal(loc, scale)`` at coordinate ``t``, per unit latent.

        The Jacobian from the latent to the value is included, so the factor turns a flat
        latent into a LogNormal value.
        """
        param = self.params[name]
        softness = self._softness(name)
        value = _from_coordinate(param.coordinate, t, softness)
        log_value = jnp.log(value)
        log_jacobian = jnp.log(self._prior_centre(name)) + jax.nn.log_sigmoid(t / softness)
        if param.coordinate == "reciprocal":
            log_jacobian = log_jacobian + 2 * log_value
        return dist.Normal(loc, scale).log_prob(log_value) - log_value + log_jacobian

    def log_likelihood(
        self,
        latent: Mapping[str, jax.Array],
        x: Mapping[str, jax.Array],
        codes: jax.Array,
        log_y: jax.Array,
    ) -> jax.Array:
        """Pointwise log density of each run's response (not its log), for one draw."""
        per_run = self._per_run(self.constrain(latent), codes)
        mean = self.law_obj.predict(per_run, x)
        # Density of the response itself, not of its log: subtract log y (the Jacobian).
        return distribution(self.noise, jnp.log(mean), per_run).log_prob(log_y) - log_y

    def _per_run(self, values: Mapping[str, jax.Array], codes: jax.Array) -> dict:
        return {
            name: value[..., codes] if self.per_group(name) else value
            for name, value in values.items()
        }

    def numpyro_model(self, x: Mapping[str, jax.Array], codes: jax.Array, log_y=None) -> None:
        """NumPyro model: latents per parameter and pooling, the law, noise on log response."""
        latent: dict[str, jax.Array] = {}
        for name, param in self.params.items():
            pooling = self.pooling[name] if self.group else "shared"
            if param.coordinate == "log" or param.support != "positive":
                self._sample_standardised(name, pooling, latent)
            else:
                self._sample_direct(name, pooling, latent)
        per_run = self._per_run(self.constrain(latent), codes)
        mean = self.law_obj.predict(per_run, x)
        with numpyro.plate("runs", codes.shape[0]):
            numpyro.sample("y", distribution(self.noise, jnp.log(mean), per_run), obs=log_y)

    def _group_shape(self, pooling: str) -> tuple[int, ...]:
        return (len(self.labels),) if pooling != "shared" else ()

    def _sample_standardised(self, name: str, pooling: str, latent: dict) -> None:
        """Latents of a log-coordinate parameter: standard Normals, scaled by its prior."""
        if pooling == "partial":
            latent[f"{name}_mu_z"] = numpyro.sample(f"{name}_mu_z", dist.Normal())
            latent[f"{name}_tau"] = numpyro.sample(
                f"{name}_tau", dist.HalfNormal(self.group_sd[name])
            )
        shape = self._group_shape(pooling)
        latent[f"{name}_z"] = numpyro.sample(
            f"{name}_z", dist.Normal().expand(shape).to_event(len(shape))
        )

    def _sample_direct(self, name: str, pooling: str, latent: dict) -> None:
        """Latents of a linear or reciprocal parameter, its prior added as a density factor.

        Partial pooling is centred: the group values are sampled directly in the coordinate,
        with ``log value[g] ~ Normal(log value_mu, tau)`` added as a density.
        """
        shape = self._group_shape(pooling)
        partial = pooling == "partial"
        site = f"{name}_mu_v" if partial else f"{name}_v"
        latent[site] = numpyro.sample(
            site, dist.ImproperUniform(constraints.real, (), event_shape=() if partial else shape)
        )
        prior = self.priors[name]
        centre = self._coordinate(name, latent, "_mu_v" if partial else "_v")
        # Factors per element, unsummed: `bayescale.density` keeps each element a term.
        numpyro.factor(
            f"{name}_prior", self._lognormal_log_density(name, centre, prior.loc, prior.scale)
        )
        if not partial:
            return
        tau = numpyro.sample(f"{name}_tau", dist.HalfNormal(self.group_sd[name]))
        latent[f"{name}_tau"] = tau
        latent[f"{name}_w"] = numpyro.sample(
            f"{name}_w", dist.ImproperUniform(constraints.real, (), event_shape=shape)
        )
        group = self._coordinate(name, latent, "_w")
        log_centre = jnp.log(
            _from_coordinate(self.params[name].coordinate, centre, self._softness(name))
        )
        numpyro.factor(
            f"{name}_group_prior", self._lognormal_log_density(name, group, log_centre, tau)
        )

    # -- conventions ----------------------------------------------------------------------

    def to_paper(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Convert amplitudes from the reference convention to the papers' (float64)."""
        return self._convert(params, sign=+1.0)

    def to_reference(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Convert amplitudes from the papers' convention to the reference one (float64)."""
        return self._convert(params, sign=-1.0)

    def _convert(self, params: Mapping[str, np.ndarray], sign: float) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        for amp, (exponent, scale) in self.law_obj.amplitudes.items():
            if amp not in out or exponent not in out:
                continue
            amplitude, power = out[amp], out[exponent]
            # A shared amplitude with a per-group exponent (or the reverse) becomes per-group.
            if amplitude.ndim < power.ndim:
                amplitude = amplitude[..., None]
            elif power.ndim < amplitude.ndim:
                power = power[..., None]
            log_ref = np.log(self.references[self.columns[scale]])
            out[amp] = np.exp(np.log(amplitude) + sign * power * log_ref)
        return out


# Kink of the soft positivity map of linear and reciprocal coordinates, as a fraction of the
# prior median: the map is the identity above it and bends smoothly to stay > 0 below it.
_SOFTNESS = 0.05


def _from_coordinate(coordinate: str, t: jax.Array, softness: float) -> jax.Array:
    """Positive value from a linear or reciprocal sampling coordinate ``t``."""
    positive = softness * jax.nn.softplus(t / softness)
    return 1.0 / positive if coordinate == "reciprocal" else positive


class ScalingModel:
    """A scaling law with pooling across groups, a noise model and priors.

    Parameters
    ----------
    law : str or Law
        A registered law name (``"power"``, ``"chinchilla"``) or a `Law`.
    x : str or dict, optional
        Scale column of a single-scale law (``"flops"``), or ``{law input: column}``. By default
        a law reads the columns named after its inputs, and a single-scale law the table's only
        scale column.
    group : str, optional
        Group column (task, dataset, architecture) across which parameters are pooled.
    pooling : dict of str to {"shared", "partial", "independent"}, optional
        Pooling per parameter; unnamed parameters keep the law's default (exponents shared,
        offsets and amplitudes partial). Only meaningful with ``group``.
    noise : {"student_t", "lognormal"}, default "student_t"
        Noise on log response. Student-t is the robust choice (the Bayesian counterpart of the
        Huber loss of Chinchilla's approach 3) and the default because on real tables a few
        outlying runs otherwise move the exponents by more than their intervals.
    priors : dict of str to Prior, optional
        Priors to override, in absolute units: Normal on the unconstrained value (the log of a
        positive parameter).

    Examples
    --------
    >>> import bayescale as bs
    >>> df = bs.datasets.load("chinchilla")
    >>> model = bs.ScalingModel("chinchilla")
    >>> post = model.fit(df[~df.besiroglu_excluded], seed=0)  # doctest: +SKIP
    """

    default_sampler_config: dict[str, Any] = {
        "num_warmup": 1000,
        "num_samples": 1000,
        "num_chains": 4,
        "target_accept_prob": 0.8,
        "dense_mass": True,
        "max_tree_depth": 10,
        "warmup": "laplace",
    }

    def __init__(
        self,
        law: str | Law,
        *,
        x: str | Mapping[str, str] | None = None,
        group: str | None = None,
        pooling: Mapping[str, str] | None = None,
        noise: str = "student_t",
        priors: Mapping[str, object] | None = None,
    ) -> None:
        self.law = law
        self.x = x
        self.group = group
        self.pooling = pooling
        self.noise = noise
        self.priors = priors

    def __repr__(self) -> str:
        law = self.law if isinstance(self.law, str) else self.law.name
        return (
            f"ScalingModel({law!r}, x={self.x!r}, group={self.group!r}, pooling={self.pooling!r}, "
            f"noise={self.noise!r}, priors={self.priors!r})"
        )

    def specify(self, frame: pd.DataFrame | ScalingData) -> tuple[ModelSpec, ScalingData]:
        """Validate the model options against a table and resolve every default.

        Raises
        ------
        SpecError
            For an unknown law, noise, pooling key or pooling mode, or a bad prior.
        DataError
            For a table the law cannot be fitted to.
        """
        law = get_law(self.law)
        if self.noise not in NOISES:
            raise SpecError(f"noise must be one of {list(NOISES)}; got {self.noise!r} instead.")
        params = {**law.params, **NOISE_PARAMS[self.noise]}
        if isinstance(frame, ScalingData):
            data = frame
            if data.group != self.group:
                raise SpecError(
                    f"the model groups by {self.group!r} but the ScalingData was built with "
                    f"group={data.group!r}; build both with the same group column."
                )
            columns = self._columns(law, pd.DataFrame(columns=list(data.scales)))
        else:
            columns = self._columns(law, frame)
            data = ScalingData.from_frame(
                frame, scales=list(columns.values()), response=None, group=self.group
            )
        data.require_positive_response()
        pooling = self._pooling(params)
        priors = self._priors(params, data.response_ref)
        independent = [n for n in law.params if self.group and pooling[n] == "independent"]
        data.check_enough_runs(len(law.params), independent)
        spec = ModelSpec(
            law=law.name,
            columns=columns,
            response=data.response,
            group=self.group,
            labels=data.labels,
            noise=self.noise,
            pooling=pooling,
            priors=priors,
            group_sd={name: p.group_sd for name, p in params.items()},
            references={c: data.references[c] for c in columns.values()},
            response_ref=data.response_ref,
        )
        return spec, data

    def fit(
        self,
        data: pd.DataFrame | ScalingData,
        *,
        seed: int = 0,
        strict: bool = False,
        progress_bar: bool | None = None,
        **sampler_config: Any,
    ) -> Posterior:
        """Sample the posterior with NUTS; a shortcut for `bayescale.fit`.

        Parameters
        ----------
        data : DataFrame or ScalingData
            The table of runs.
        seed : int, default 0
            Random seed; the same seed gives the same draws on the same platform.
        strict : bool, default False
            Raise `SamplingError` instead of warning when diagnostics fail.
        progress_bar : bool, optional
            Show progress; by default only when standard error is a terminal.
        **sampler_config
            ``num_warmup``, ``num_samples``, ``num_chains``, ``target_accept_prob``,
            ``dense_mass`` (True, False, or ``"groups"``: each group's parameters coupled with
            the shared ones only), ``max_tree_depth``, ``warmup`` (``"laplace"`` or
            ``"standard"``, docs/model.md); defaults in `default_sampler_config`, except
            ``target_accept_prob`` 0.95 when a parameter is partially pooled and ``dense_mass``
            ``"groups"`` from 200 groups.

        Returns
        -------
        Posterior
        """
        from bayescale.inference import fit

        return fit(
            self, data, seed=seed, strict=strict, progress_bar=progress_bar, **sampler_config
        )

    def _columns(self, law: Law, frame: pd.DataFrame) -> dict[str, str]:
        if isinstance(self.x, Mapping):
            unknown = sorted(set(self.x) - set(law.inputs))
            if unknown:
                raise SpecError(
                    f"x names inputs {unknown} that law {law.name!r} does not have; its inputs "
                    f"are {list(law.inputs)}."
                )
            return {name: str(self.x.get(name, name)) for name in law.inputs}
        if self.x is not None:
            if len(law.inputs) != 1:
                raise SpecError(
                    f"law {law.name!r} reads {list(law.inputs)}; pass x as a dict "
                    f"{{input: column}} to rename them, not a single column {self.x!r}."
                )
            return {law.inputs[0]: str(self.x)}
        if law.inputs == ("x",):
            return {"x": default_scale(frame)}
        return {name: name for name in law.inputs}

    def _pooling(self, params: Mapping[str, Param]) -> dict[str, str]:
        given = dict(self.pooling or {})
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise SpecError(
                f"pooling names {unknown}, which are not parameters of this model; parameters "
                f"are {list(params)}."
            )
        bad = {k: v for k, v in given.items() if v not in POOLINGS}
        if bad:
            raise SpecError(f"pooling must be one of {list(POOLINGS)}; got {bad}.")
        if given and not self.group and any(v != "shared" for v in given.values()):
            raise SpecError(
                f"pooling {given} needs a group column to pool across; pass group='task' (or "
                "your group column)."
            )
        return {name: given.get(name, p.pooling) for name, p in params.items()}

    def _priors(self, params: Mapping[str, Param], response_ref: float) -> dict[str, Prior]:
        given = dict(self.priors or {})
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise SpecError(
                f"priors name {unknown}, which are not parameters of this model; parameters "
                f"are {list(params)}."
            )
        out = {}
        for name, param in params.items():
            if name in given:
                out[name] = _as_prior(name, given[name])
            elif param.response_units:
                out[name] = Prior(param.prior.loc + float(np.log(response_ref)), param.prior.scale)
            else:
                out[name] = param.prior
        return out
