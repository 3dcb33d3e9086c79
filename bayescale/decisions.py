"""Questions asked of a posterior: forecasts, P(target), compute-optimal allocation."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from bayescale import noise
from bayescale.data import group_codes, scale_column
from bayescale.errors import DataError, SpecError
from bayescale.posterior import Posterior

KINDS = ("predictive", "mean")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise SpecError(f"kind must be one of {list(KINDS)}; got {kind!r} instead.")


def _check_prob(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise SpecError(f"{name} must lie strictly between 0 and 1; got {value!r}.")


def _row_params(posterior: Posterior, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Parameter draws per row: arrays of shape (draws, rows) or (draws, 1)."""
    out = {}
    for name, values in posterior.draws().items():
        out[name] = values[:, codes] if values.ndim == 2 else values[:, None]
    return out


def _frame_codes(posterior: Posterior, at: pd.DataFrame) -> np.ndarray:
    spec = posterior.spec
    if not spec.group:
        return np.zeros(len(at), dtype=np.int32)
    if spec.group not in at.columns:
        raise DataError(
            f"the fit pools across {spec.group!r}, so 'at' needs a {spec.group!r} column naming "
            f"one of {list(spec.labels)} per row."
        )
    codes, _ = group_codes(at, spec.group, spec.labels)
    return codes


def mean_draws(posterior: Posterior, at: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Compute the law's mean at each row of ``at`` per draw, with per-row parameter draws.

    Returns
    -------
    mean : ndarray, shape (draws, rows)
    params : dict of str to ndarray
        Every parameter, shaped to broadcast against ``mean``.
    """
    if not isinstance(at, pd.DataFrame):
        raise TypeError(f"'at' must be a pandas DataFrame; got {type(at).__name__} instead.")
    if len(at) == 0:
        raise DataError("'at' is empty; give at least one row of scales to forecast at.")
    spec = posterior.spec
    posterior.warn_if_unreliable()
    missing = [c for c in spec.columns.values() if c not in at.columns]
    if missing:
        raise DataError(
            f"'at' has no column {missing}; the law {spec.law!r} needs "
            f"{list(spec.columns.values())}. Its columns are {[str(c) for c in at.columns]}."
        )
    x = {
        name: jnp.asarray(np.log(scale_column(at, column)) - np.log(spec.references[column]))
        for name, column in spec.columns.items()
    }
    params = _row_params(posterior, _frame_codes(posterior, at))
    law_params = {k: jnp.asarray(params[k]) for k in spec.law_obj.params}
    mean = np.asarray(spec.law_obj.predict(law_params, x), dtype=np.float64)
    return np.broadcast_to(mean, (mean.shape[0], len(at))), params


def forecast(
    posterior: Posterior,
    at: pd.DataFrame,
    ci_prob: float = 0.9,
    *,
    kind: str = "predictive",
    seed: int = 0,
) -> pd.DataFrame:
    """Posterior forecast of the response at new scales.

    Parameters
    ----------
    posterior : Posterior
        A fit.
    at : DataFrame
        One row per point: the law's scale columns (and the group column of a grouped fit).
    ci_prob : float, default 0.9
        Mass of the equal-tailed interval.
    kind : {"predictive", "mean"}, default "predictive"
        ``"predictive"`` includes the noise of a new run; ``"mean"`` is the law's curve alone.
    seed : int, default 0
        Seed of the predictive noise draws.

    Returns
    -------
    DataFrame
        Aligned with ``at`` (same index): ``mean``, ``median``, ``lower``, ``upper``.

    See Also
    --------
    prob_reached : probability that a run reaches a target.

    Examples
    --------
    >>> import pandas as pd, bayescale as bs  # doctest: +SKIP
    >>> bs.forecast(post, at=pd.DataFrame({"params": [7e10], "tokens": [1.4e12]}))  # doctest: +SKIP
    """
    _check_kind(kind)
    _check_prob("ci_prob", ci_prob)
    draws = predictive_draws(posterior, at, kind=kind, seed=seed)
    tail = (1 - ci_prob) / 2
    table = pd.DataFrame(
        {
            "mean": draws.mean(axis=0),
            "median": np.median(draws, axis=0),
            "lower": np.quantile(draws, tail, axis=0),
            "upper": np.quantile(draws, 1 - tail, axis=0),
        },
        index=at.index,
    )
    table.attrs["sampling_problems"] = list(posterior.diagnostics.problems)
    return table


def predictive_draws(
    posterior: Posterior, at: pd.DataFrame, *, kind: str = "predictive", seed: int = 0
) -> np.ndarray:
    """Draws of the response (``kind="predictive"``) or of the law's mean, shape (draws, rows)."""
    _check_kind(kind)
    mean, params = mean_draws(posterior, at)
    if kind == "mean":
        return mean
    rng = np.random.default_rng(seed)
    return noise.draw(posterior.spec.noise, rng, mean, params)


def prob_reached(
    posterior: Posterior,
    target: float,
    at: pd.DataFrame,
    *,
    kind: str = "predictive",
) -> np.ndarray:
    """Probability that a run at each row of ``at`` reaches ``target``.

    Reaching means ``loss <= target`` (lower is better) or ``metric >= target``. With
    ``kind="predictive"`` the probability includes the noise of a single new run; it is computed
    exactly per draw from the noise model's CDF, then averaged over draws.

    Parameters
    ----------
    posterior : Posterior
        A fit.
    target : float
        Target response.
    at : DataFrame
        Scales (and group) per row.
    kind : {"predictive", "mean"}, default "predictive"
        Whether to include the run's noise or ask about the law's curve alone.

    Returns
    -------
    ndarray
        One probability per row of ``at``.

    See Also
    --------
    forecast : intervals at the same rows.
    """
    _check_kind(kind)
    if not np.isfinite(target) or target <= 0:
        raise SpecError(f"target must be a finite value > 0; got {target!r}.")
    mean, params = mean_draws(posterior, at)
    if kind == "mean":
        below = (mean <= target).mean(axis=0)
    else:
        below = noise.cdf(posterior.spec.noise, np.float64(target), mean, params).mean(axis=0)
    return below if posterior.spec.response == "loss" else 1.0 - below


def optimal_allocation(
    posterior: Posterior,
    flops: float | np.ndarray,
    ci_prob: float = 0.9,
    *,
    group: str | None = None,
    flops_per_param_token: float = 6.0,
    grid_size: int = 801,
) -> pd.DataFrame:
    """Compute-optimal parameters and tokens for a budget, with intervals over the posterior.

    For each draw, minimises the law's mean along ``flops = flops_per_param_token * N * D``
    by a grid over log N (tokens per parameter from 1e-3 to 1e5) refined by a parabola.

    Parameters
    ----------
    posterior : Posterior
        A fit of a law of parameters and tokens (e.g. ``chinchilla``).
    flops : float or array
        Compute budgets (FLOPs).
    ci_prob : float, default 0.9
        Mass of the equal-tailed intervals.
    group : str, optional
        Group label, for a grouped fit.
    flops_per_param_token : float, default 6.0
        FLOPs per parameter per token (6 for a dense transformer's forward and backward pass).
    grid_size : int, default 801
        Points of the search grid.

    Returns
    -------
    DataFrame
        One row per budget: ``flops`` and, for ``params``, ``tokens``, ``tokens_per_param`` and
        ``loss``, the ``_median``, ``_lower`` and ``_upper`` over draws.
    """
    _check_prob("ci_prob", ci_prob)
    spec = posterior.spec
    columns = set(spec.columns.values())
    if not {"params", "tokens"} <= columns:
        raise SpecError(
            f"optimal_allocation needs a law of 'params' and 'tokens'; law {spec.law!r} reads "
            f"{sorted(columns)}."
        )
    if spec.group and group is None:
        raise SpecError(
            f"the fit pools across {spec.group!r}; pass group=... naming one of "
            f"{list(spec.labels)}."
        )
    budgets = np.atleast_1d(np.asarray(flops, dtype=np.float64))
    if not np.all(np.isfinite(budgets) & (budgets > 0)):
        raise SpecError(f"flops must be finite and > 0; got {flops!r}.")
    ratio = np.logspace(-3, 5, grid_size)  # tokens per parameter
    tail = (1 - ci_prob) / 2
    rows = []
    for budget in budgets:
        n = np.sqrt(budget / flops_per_param_token / ratio)
        frame = pd.DataFrame({"params": n, "tokens": budget / flops_per_param_token / n})
        if spec.group:
            frame[spec.group] = group
        mean, _ = mean_draws(posterior, frame)
        best = _refined_argmin(np.log(n), mean)
        n_opt = np.exp(best)
        d_opt = budget / flops_per_param_token / n_opt
        loss_opt = np.min(mean, axis=1)
        row = {"flops": budget}
        for name, values in (
            ("params", n_opt),
            ("tokens", d_opt),
            ("tokens_per_param", d_opt / n_opt),
            ("loss", loss_opt),
        ):
            row[f"{name}_median"] = float(np.median(values))
            row[f"{name}_lower"] = float(np.quantile(values, tail))
            row[f"{name}_upper"] = float(np.quantile(values, 1 - tail))
        rows.append(row)
    return pd.DataFrame(rows)


def _refined_argmin(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (draws, grid), the minimiser on ``grid`` refined by a parabola."""
    i = np.clip(np.argmin(values, axis=1), 1, grid.size - 2)
    rows = np.arange(values.shape[0])
    left, mid, right = values[rows, i - 1], values[rows, i], values[rows, i + 1]
    step = grid[1] - grid[0]
    curvature = left - 2 * mid + right
    shift = np.where(curvature > 0, 0.5 * (left - right) / np.where(curvature > 0, curvature, 1), 0)
    return grid[i] + np.clip(shift, -1, 1) * step


def fitted_runs(posterior: Posterior, ci_prob: float = 0.9) -> pd.DataFrame:
    """Posterior predictive interval at each fitted run, beside what was observed.

    Returns
    -------
    DataFrame
        One row per run: its scale (and group) columns, ``observed``, ``median``, ``lower``,
        ``upper``.
    """
    data = posterior.data
    runs = pd.DataFrame(dict(data.scales), index=data.rows)
    if data.group:
        runs[data.group] = [data.labels[c] for c in data.codes]
    table = forecast(posterior, runs, ci_prob)
    return pd.concat([runs.assign(observed=data.y), table[["median", "lower", "upper"]]], axis=1)


def law_curve(
    posterior: Posterior,
    *,
    num: int = 100,
    extend_decades: float = 1.0,
    ci_prob: float = 0.9,
) -> pd.DataFrame:
    """Compute the law's posterior band along its one scale, per group, past the largest run.

    Parameters
    ----------
    posterior : Posterior
        A fit of a law of one scale column.
    num : int, default 100
        Grid points per group.
    extend_decades : float, default 1.0
        How far past the largest run the grid goes, in decades of the scale.
    ci_prob : float, default 0.9
        Mass of the band.

    Returns
    -------
    DataFrame
        The scale column (and group), ``median``, ``lower``, ``upper`` of the law's mean.
    """
    spec = posterior.spec
    if len(spec.columns) != 1:
        raise SpecError(
            f"law_curve draws a law of one scale; law {spec.law!r} reads "
            f"{list(spec.columns.values())}. Use fitted_runs instead."
        )
    column = next(iter(spec.columns.values()))
    values = posterior.data.scales[column]
    grid = np.logspace(np.log10(values.min()), np.log10(values.max()) + extend_decades, num)
    labels = list(spec.labels) if spec.group else [None]
    frames = []
    for label in labels:
        frame = pd.DataFrame({column: grid})
        if label is not None:
            frame[spec.group] = label
        frames.append(frame)
    at = pd.concat(frames, ignore_index=True)
    return pd.concat([at, forecast(posterior, at, ci_prob, kind="mean")], axis=1)
