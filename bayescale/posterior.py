"""`Posterior`: ArviZ draws plus the spec they came from; diagnostics, summary, save and load."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from bayescale.convergence import diagnostics_table, summary_statistics
from bayescale.data import ScalingData
from bayescale.errors import LoadError, SpecError, warn_sampling
from bayescale.laws import LAWS
from bayescale.model import ModelSpec

SCHEMA_VERSION = 2
_META_KEY = "bayescale"
RHAT_MAX = 1.01
ESS_MIN_PER_CHAIN = 100


# A partially pooled parameter whose between-group spread (sd of its log across groups) has a
# posterior median below this is, for sampling purposes, the same in every group.
NEAR_EQUAL_SPREAD = 0.05


def _near_equal_groups(posterior: Any) -> list[str]:
    """Name the partially pooled parameters whose spread ``<name>_tau`` has a median below 5%."""
    return [
        str(var)[: -len("_tau")]
        for var in posterior.data_vars
        if str(var).endswith("_tau") and float(posterior[var].median()) < NEAR_EQUAL_SPREAD
    ]


def _versions() -> dict[str, str]:
    names = ("bayescale", "numpyro", "jax", "arviz", "numpy")
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """Sampling diagnostics of a fit.

    Attributes
    ----------
    table : DataFrame
        R-hat, bulk and tail ESS and MCSE per parameter, as `arviz.summary` gives them.
    num_divergent : int
        Transitions that diverged after warmup.
    num_max_tree_depth : int
        Transitions that hit the maximum tree depth.
    num_draws : int
        Draws over all chains.
    problems : list of str
        Plain-language description and remedy of each failed check; empty when all pass.
    """

    table: pd.DataFrame
    num_divergent: int
    num_max_tree_depth: int
    num_draws: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        """True when every check passes."""
        return not self.problems

    @classmethod
    def from_idata(
        cls,
        idata: az.InferenceData,
        max_tree_depth: int,
        sampler: Mapping[str, Any] | None = None,
    ) -> Diagnostics:
        """Compute the diagnostics of ``idata``: ArviZ's numbers (`bayescale.convergence`).

        ``sampler`` (the settings the fit ran with) makes each remedy a concrete next setting.
        """
        sampler = dict(sampler or {})
        num_warmup = int(sampler.get("num_warmup", 1000))
        num_samples = int(sampler.get("num_samples", 1000))
        target_accept = float(sampler.get("target_accept_prob", 0.8))
        # A chain that never moved has no variance: its R-hat and ESS are NaN, reported below.
        table = diagnostics_table(idata.posterior)
        stats = idata.sample_stats
        num_chains = idata.posterior.sizes["chain"]
        divergent = int(stats["diverging"].sum())
        max_depth = int((stats["tree_depth"] >= max_tree_depth).sum())
        problems = []
        undefined = table.index[table[["r_hat", "ess_bulk", "ess_tail"]].isna().any(axis=1)]
        if len(undefined):
            problems.append(
                f"R-hat or ESS could not be computed for {list(undefined)}: too few draws or "
                "chains, or a chain that never moved. Run longer (num_samples=1000, "
                "num_chains=4)."
            )
        rhat = table["r_hat"].fillna(-np.inf)
        if rhat.max() > RHAT_MAX:
            problems.append(
                f"R-hat {rhat.max():.3f} for '{rhat.idxmax()}' (should be <= {RHAT_MAX}): "
                f"chains disagree. Run longer (num_warmup={2 * num_warmup}, "
                f"num_samples={2 * num_samples}) or simplify the pooling."
            )
        ess_min = ESS_MIN_PER_CHAIN * num_chains
        for column, what in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
            ess = table[column].fillna(np.inf)
            if ess.min() < ess_min:
                needed = num_samples * 1.5 * ess_min / max(ess.min(), 1.0)
                problems.append(
                    f"{what} ESS {ess.min():.0f} for '{ess.idxmin()}' (should be >= "
                    f"{ess_min}): too few effective draws for reliable intervals. Run longer "
                    f"(num_samples={int(np.ceil(needed / 1000) * 1000)})."
                )
        if divergent:
            remedy = (
                "Raise target_accept_prob=0.95"
                if target_accept < 0.95
                else "A smaller step size did not help: pool fewer parameters partially (with few "
                "groups their spread is barely identified), or give tighter priors"
            )
            equal = _near_equal_groups(idata.posterior)
            if equal:
                remedy += (
                    f". The groups barely differ in {equal} (between-group spread near 0, where "
                    "partial pooling is hardest to sample): share them, pooling="
                    + str({name: "shared" for name in equal})
                )
            problems.append(
                f"{divergent} divergent transitions: the sampler missed part of the posterior, so "
                f"intervals may be too narrow. {remedy}."
            )
        if max_depth:
            problems.append(
                f"{max_depth} transitions hit the maximum tree depth {max_tree_depth}: sampling "
                f"was inefficient and may be incomplete. Raise max_tree_depth={max_tree_depth + 2} "
                "or check for parameters the data cannot identify."
            )
        return cls(
            table=table,
            num_divergent=divergent,
            num_max_tree_depth=max_depth,
            num_draws=int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]),
            problems=problems,
        )

    def describe(self) -> str:
        """Plain-language summary of the checks."""
        lines = [
            f"max R-hat {self.table['r_hat'].max():.3f}, min bulk ESS "
            f"{self.table['ess_bulk'].min():.0f}, min tail ESS {self.table['ess_tail'].min():.0f}, "
            f"{self.num_divergent} divergences, {self.num_max_tree_depth} max-tree-depth hits "
            f"over {self.num_draws} draws."
        ]
        if self.problems:
            lines += ["WARNING: " + p for p in self.problems]
        else:
            lines.append("All sampling checks pass.")
        return "\n".join(lines)


class Posterior:
    """Posterior draws of a scaling model, with the spec to rebuild it.

    Parameters
    ----------
    idata : arviz.InferenceData
        Draws in the papers' convention (``posterior``), sampler statistics, pointwise
        log-likelihood, observed data.
    spec : ModelSpec
        The resolved model.
    meta : dict
        Seed, sampler settings and package versions.
    """

    def __init__(self, idata: az.InferenceData, spec: ModelSpec, meta: Mapping[str, Any]) -> None:
        self.idata = idata
        self.spec = spec
        self.meta = dict(meta)
        sampler = meta["sampler"]
        self.diagnostics = Diagnostics.from_idata(idata, int(sampler["max_tree_depth"]), sampler)

    def __repr__(self) -> str:
        group = ""
        if self.spec.group:
            group = f", group={self.spec.group!r} ({len(self.spec.labels)} groups)"
        return (
            f"<Posterior law={self.spec.law!r}{group}, noise={self.spec.noise!r}, "
            f"{self.diagnostics.num_draws} draws, diagnostics "
            f"{'ok' if self.diagnostics.ok else 'FAILED'}>"
        )

    def warn_if_unreliable(self) -> None:
        """Warn (`SamplingWarning`) when the fit failed its sampling checks."""
        if self.diagnostics.problems:
            warn_sampling(
                "these results come from a fit that failed its sampling checks: "
                + " ".join(self.diagnostics.problems)
            )

    @property
    def data(self) -> ScalingData:
        """The fitted runs, rebuilt from the saved observed and constant data."""
        const = self.idata.constant_data
        scales = {c: const[c].values for c in self.spec.references}
        codes = const["group_code"].values if "group_code" in const else None
        return ScalingData(
            scales=scales,
            response=self.spec.response,
            y=self.idata.observed_data[self.spec.response].values,
            references=dict(self.spec.references),
            response_ref=self.spec.response_ref,
            group=self.spec.group,
            labels=self.spec.labels,
            codes=codes if codes is not None else np.zeros(len(const["run"]), dtype=np.int32),
            rows=const["row"].values,
        )

    def draws(self) -> dict[str, np.ndarray]:
        """Law and noise parameters in the reference convention, draws flattened first.

        Shared parameters have shape ``(num_draws,)``, per-group ones ``(num_draws, groups)``.
        """
        post = self.idata.posterior
        out = {}
        for name in self.spec.params:
            values = post[name].stack(sample=("chain", "draw")).transpose("sample", ...)
            out[name] = values.values.astype(np.float64)
        return self.spec.to_reference(out)

    def summary(self, ci_prob: float = 0.9) -> pd.DataFrame:
        """Posterior summary in the papers' convention, with diagnostics.

        Parameters
        ----------
        ci_prob : float, default 0.9
            Mass of the equal-tailed interval.

        Returns
        -------
        DataFrame
            Indexed by parameter (``alpha``, ``E[c4]``), columns ``mean``, ``sd``, ``median``,
            ``lower``, ``upper``, ``mcse_mean``, ``r_hat``, ``ess_bulk``, ``ess_tail``.
        """
        if not 0 < ci_prob < 1:
            raise SpecError(f"ci_prob must lie strictly between 0 and 1; got {ci_prob!r}.")
        stats = summary_statistics(self.idata.posterior, ci_prob)
        self.warn_if_unreliable()
        diag = self.diagnostics.table[["mcse_mean", "r_hat", "ess_bulk", "ess_tail"]]
        table = pd.concat([stats, diag], axis=1)
        table.attrs["sampling_problems"] = list(self.diagnostics.problems)
        return table

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the fit to a netCDF file (atomically: a crash never leaves half a file).

        Returns
        -------
        Path
            The path written.
        """
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self.idata.to_netcdf(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path


def from_values(
    spec: ModelSpec,
    data: ScalingData,
    *,
    values: Mapping[str, np.ndarray],
    stats: Mapping[str, np.ndarray],
    log_likelihood: np.ndarray,
    sampler: Mapping[str, Any],
) -> Posterior:
    """Build a `Posterior` from `ModelSpec.parameter_values` draws (chain, draw, ...).

    ``stats`` holds ``diverging`` and ``num_steps`` per draw (chain, draw) and each chain's
    ``step_size`` (chain,).
    """
    values = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    paper = spec.to_paper(values)
    # Population centres of amplitudes convert with the matching exponent's centre.
    for amp, (exponent, scale) in spec.law_obj.amplitudes.items():
        if f"{amp}_mu" in values:
            exp_centre = values.get(f"{exponent}_mu", values[exponent])
            if exp_centre.ndim == 2:
                log_ref = np.log(spec.references[spec.columns[scale]])
                paper[f"{amp}_mu"] = values[f"{amp}_mu"] * np.exp(exp_centre * log_ref)
            else:
                del paper[f"{amp}_mu"]
    group = spec.group or "group"
    dims = {name: [group] for name, v in paper.items() if v.ndim == 3}
    num_steps = stats["num_steps"]
    meta = {
        "schema_version": SCHEMA_VERSION,
        "spec": spec.to_dict(),
        "spec_sha256": spec.digest(),
        "sampler": dict(sampler),
        "versions": _versions(),
    }
    constant = {c: data.scales[c] for c in spec.references}
    constant["row"] = np.asarray(data.rows).astype(str)
    if spec.group:
        constant["group_code"] = data.codes
    idata = az.from_dict(
        posterior=paper,
        sample_stats={
            "diverging": stats["diverging"],
            "n_steps": num_steps,
            "tree_depth": np.ceil(np.log2(num_steps + 1)).astype(np.int64),
            # Constant after warmup: each chain's adapted step size, repeated per draw.
            "step_size": np.broadcast_to(stats["step_size"][:, None], num_steps.shape),
        },
        log_likelihood={spec.response: log_likelihood},
        observed_data={spec.response: data.y},
        constant_data=constant,
        coords={group: list(spec.labels)} if spec.group else None,
        dims={
            **dims,
            spec.response: ["run"],
            **{c: ["run"] for c in constant},
        },
    )
    idata.posterior.attrs[_META_KEY] = json.dumps(meta, sort_keys=True)
    return Posterior(idata, spec, meta)


def load(path: str | os.PathLike[str]) -> Posterior:
    """Read a fit written by `Posterior.save`. Never runs code from the file.

    Raises
    ------
    LoadError
        If the file is missing, unreadable, not a bayescale fit, from a newer schema, or edited
        since it was saved.
    """
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"no saved fit at {str(path)!r}: the file does not exist.")
    try:
        idata = az.from_netcdf(path)
    except Exception as err:  # any reader failure means the file is not a readable fit
        raise LoadError(
            f"{str(path)!r} is not a readable netCDF fit ({type(err).__name__}: {err}). "
            "It may be truncated or not written by bayescale."
        ) from err
    raw = idata.posterior.attrs.get(_META_KEY) if "posterior" in idata.groups() else None
    if raw is None:
        raise LoadError(f"{str(path)!r} holds no bayescale metadata; bayescale did not save it.")
    try:
        meta = json.loads(raw)
        if meta.get("schema_version") != SCHEMA_VERSION:
            raise LoadError(
                f"{str(path)!r} uses file schema {meta.get('schema_version')!r}; this bayescale "
                f"reads schema {SCHEMA_VERSION}. Load it with the version that wrote it "
                f"({meta.get('versions', {}).get('bayescale', 'unknown')})."
            )
        spec = ModelSpec.from_dict(meta["spec"])
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, LoadError):
            raise
        raise LoadError(f"{str(path)!r} has damaged bayescale metadata ({err}).") from err
    if spec.digest() != meta.get("spec_sha256"):
        raise LoadError(f"{str(path)!r}: the model spec does not match its checksum (edited).")
    if spec.law not in LAWS:
        raise LoadError(
            f"{str(path)!r} was fitted with law {spec.law!r}, which is not registered here. Import "
            "the module that defines it and call bayescale.register_law(law) before loading."
        )
    return Posterior(idata, spec, meta)
