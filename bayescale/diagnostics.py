"""ArviZ's summary diagnostics, computed for every parameter in one pass of array operations.

`summary` gives the table of ``az.summary(idata, kind="diagnostics")``: MCSE of the mean and sd,
bulk and tail ESS, and rank-normalised split R-hat (Vehtari et al. 2021). ArviZ computes them
one parameter at a time in Python, about 4 ms each here: 12 s for the 3,000 group parameters of
a fit of 1,000 groups, two minutes at 10,000 groups. The formulas below are ArviZ's
(``arviz.stats.diagnostics``, 0.2x), with Geyer's initial positive and monotone sequences written
as a cumulative minimum; tests/test_diagnostics.py checks that both give the same table.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
from scipy.fft import next_fast_len
from scipy.special import ndtri
from scipy.stats import rankdata

MIN_DRAWS = 4
COLUMNS = ["mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]


def summary(idata: az.InferenceData) -> pd.DataFrame:
    """Diagnostics of every scalar in ``idata.posterior``, one row each, as ArviZ labels them."""
    draws, labels = [], []
    for name, values in idata.posterior.data_vars.items():
        chains, num_draws = values.shape[:2]
        draws.append(np.asarray(values, dtype=float).reshape(chains, num_draws, -1))
        labels.extend(_labels(name, values))
    return pd.DataFrame(diagnostics(np.concatenate(draws, axis=-1)), index=labels)


def diagnostics(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Return the `COLUMNS` of draws (chains, draws, parameters), each of shape (parameters,).

    NaN for a parameter with a NaN draw or fewer than `MIN_DRAWS` draws; R-hat needs 2 chains.
    """
    chains, num_draws, size = draws.shape
    out = {column: np.full(size, np.nan) for column in COLUMNS}
    valid = ~np.isnan(draws).any(axis=(0, 1))
    if num_draws < MIN_DRAWS or not valid.any():
        return out
    x = draws[:, :, valid]
    flat = x.reshape(-1, x.shape[-1])
    low, high = np.quantile(flat, [0.05, 0.95], axis=0)
    split_z = _z_scale(_split(x))
    tail = np.minimum(_ess(_split(x <= low)), _ess(_split(x <= high)))
    squares = (x - flat.mean(axis=0)) ** 2
    variance = squares.sum(axis=(0, 1)) / (flat.shape[0] - 1)
    mean_square = squares.mean(axis=(0, 1))
    # MCSE of the sd: the variance of the squared deviations' mean, by the delta method.
    variance_of_variance = ((squares**2).mean(axis=(0, 1)) - mean_square**2) / _ess(_split(squares))
    columns = {
        "mcse_mean": np.sqrt(variance / _ess(_split(x))),
        "mcse_sd": np.sqrt(variance_of_variance / mean_square / 4),
        "ess_bulk": _ess(split_z),
        "ess_tail": tail,
    }
    if chains >= 2:
        folded = np.abs(x - np.median(flat, axis=0))
        columns["r_hat"] = np.maximum(_rhat(split_z), _rhat(_z_scale(_split(folded))))
    for column, values in columns.items():
        out[column][valid] = values
    return out


def _labels(name: str, values) -> list[str]:
    """ArviZ's row labels: ``name``, or ``name[a, b]`` for each index of the extra dims."""
    dims = values.dims[2:]
    if not dims:
        return [name]
    coords = [values.coords[dim].values for dim in dims]
    grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1).reshape(-1, len(dims))
    return [f"{name}[{', '.join(str(v) for v in index)}]" for index in grid]


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as chains of their own (chains first halves first)."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, -half:]], axis=0).astype(float)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Return the normal scores of the ranks over all chains and draws (Blom's offset)."""
    chains, num_draws, size = x.shape
    ranks = rankdata(x.reshape(-1, size), method="average", axis=0)
    count = chains * num_draws
    return ndtri((ranks - 3 / 8) / (count - 3 / 4 + 1)).reshape(x.shape)


def _rhat(x: np.ndarray) -> np.ndarray:
    """Potential scale reduction of (chains, draws, parameters)."""
    num_draws = x.shape[1]
    between = num_draws * np.var(x.mean(axis=1), axis=0, ddof=1)
    within = np.var(x, axis=1, ddof=1).mean(axis=0)
    return np.sqrt((between / within + num_draws - 1) / num_draws)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag along axis 1, by FFT (ArviZ's ``autocov``)."""
    num_draws = x.shape[1]
    length = next_fast_len(2 * num_draws)
    centred = x - x.mean(axis=1, keepdims=True)
    transform = np.fft.rfft(centred, n=length, axis=1)
    power = transform * np.conjugate(transform)
    return np.fft.irfft(power, n=length, axis=1)[:, :num_draws] / num_draws


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of (chains, draws, parameters), Geyer's truncation, per parameter.

    With rho_t the combined autocorrelation and P_j = rho_2j + rho_2j+1 (rho_0 = 1), the sum
    stops at J, the first pair with P_J <= 0 or at the end of the draws; the pairs before it
    enter through their running minimum (the monotone sequence), pair J through rho_2J where
    P_J >= 0 or rho_2J > 0.
    """
    chains, num_draws, size = x.shape
    total = chains * num_draws
    autocovariance = _autocovariance(x)
    mean_variance = autocovariance[:, 0].mean(axis=0) * num_draws / (num_draws - 1.0)
    variance_plus = mean_variance * (num_draws - 1.0) / num_draws
    if chains > 1:
        variance_plus = variance_plus + np.var(x.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1.0 - (mean_variance - autocovariance.mean(axis=0)) / variance_plus
    rho[0] = 1.0
    num_pairs = num_draws // 2
    pairs = rho[: 2 * num_pairs].reshape(num_pairs, 2, size)
    pair_sums = pairs.sum(axis=1)
    # J: the first pair that is not positive, or the last the sequence may reach
    # (2 J + 1 >= num_draws - 3).
    last_pair = max(0, -(-(num_draws - 4) // 2))
    stops = (pair_sums <= 0) | (np.arange(num_pairs)[:, None] >= last_pair)
    stop = np.argmax(stops, axis=0)
    before = np.arange(num_pairs)[:, None] < stop
    monotone = np.minimum.accumulate(np.where(before, pair_sums, np.inf), axis=0)
    kept = np.where(before, monotone, 0.0).sum(axis=0)
    even = np.take_along_axis(pairs[:, 0], stop[None], axis=0)[0]
    stop_sum = np.take_along_axis(pair_sums, stop[None], axis=0)[0]
    last = np.where((stop_sum >= 0) | (even > 0), even, 0.0)
    tau = np.maximum(-1.0 + 2.0 * kept + last, 1 / np.log10(total))
    ess = total / tau
    ess[np.isnan(rho).any(axis=0)] = np.nan
    constant = np.ptp(x, axis=(0, 1)) < np.finfo(float).resolution
    ess[constant] = total
    return ess
