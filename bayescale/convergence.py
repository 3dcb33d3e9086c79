"""ArviZ's summary statistics for every parameter at once.

`arviz.summary` computes R-hat, ESS and MCSE one parameter at a time in Python: 9.7 s of a
62 s fit at 1,000 groups (3,010 parameters, 4 x 250 draws), 112 s for the 30,010 parameters of
10,000 groups (4 x 1000 draws; benchmarks/README.md, `diagnostics.py`), where this module takes
25 s on the same 2 cores. It computes the same numbers with the same formulas (Vehtari et al.
2021, as ArviZ 0.2x writes them: rank-normalised split R-hat, bulk and tail ESS by Geyer's
initial monotone sequence, MCSE of the mean and sd) as array operations over blocks of
parameters, the blocks in threads. Parameters with infinite draws go to ArviZ's own
per-parameter code, so every number is ArviZ's up to floating-point summation order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import xarray as xr
from arviz.labels import BaseLabeller
from arviz.stats.diagnostics import _multichain_statistics
from scipy import fft, special
from scipy.fft import next_fast_len

DIAGNOSTICS = ("mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat")
# Parameters per block of the array work, one block per thread at a time (4 MB of draws
# per array at 4 x 1000 draws).
BLOCK = 128
MIN_DRAWS = 4


def diagnostics_table(posterior: xr.Dataset) -> pd.DataFrame:
    """Return `arviz.summary(..., kind="diagnostics")` of ``posterior``, same rows and columns.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with dimensions (chain, draw, ...).
    """
    labels, values = _flatten(posterior)
    starts = range(0, values.shape[-1], BLOCK)

    def block_diagnostics(start: int) -> np.ndarray:
        block = values[..., start : start + BLOCK]
        # Constant or infinite draws give 0/0 and inf - inf where ArviZ also gives NaN.
        with np.errstate(divide="ignore", invalid="ignore"):
            return _block_diagnostics(np.ascontiguousarray(np.moveaxis(block, -1, 0)))

    # numpy's sorts, FFTs and ufuncs release the GIL: blocks run on every core.
    with ThreadPoolExecutor(max_workers=max(1, min(len(starts), os.cpu_count() or 1))) as pool:
        table = np.concatenate(list(pool.map(block_diagnostics, starts)))
    return pd.DataFrame(table, index=labels, columns=list(DIAGNOSTICS))


def summary_statistics(posterior: xr.Dataset, ci_prob: float) -> pd.DataFrame:
    """Mean, sd (ddof 1), median and the equal-tailed ``ci_prob`` interval of every parameter."""
    labels, values = _flatten(posterior)
    flat = values.reshape(-1, values.shape[-1])
    tail = (1 - ci_prob) / 2
    lower, median, upper = np.quantile(flat, [tail, 0.5, 1 - tail], axis=0)
    return pd.DataFrame(
        {
            "mean": flat.mean(axis=0),
            "sd": flat.std(axis=0, ddof=1),
            "median": median,
            "lower": lower,
            "upper": upper,
        },
        index=labels,
    )


def _flatten(posterior: xr.Dataset) -> tuple[list[str], np.ndarray]:
    """Row labels as ArviZ writes them and the draws as one array (chain, draw, parameter)."""
    labels, columns = [], []
    for name, variable in posterior.data_vars.items():
        variable = variable.transpose("chain", "draw", ...)
        labels.extend(_labels(str(name), variable))
        columns.append(np.asarray(variable, dtype=float).reshape(*variable.shape[:2], -1))
    return labels, np.concatenate(columns, axis=-1)


def _labels(name: str, variable: xr.DataArray) -> Iterator[str]:
    """ArviZ's flat labels (``E[t003]``) of ``variable``'s elements, in C order."""
    labeller = BaseLabeller()
    dims = variable.dims[2:]
    coordinates = [variable[dim].values for dim in dims]
    for index in np.ndindex(*variable.shape[2:]):
        isel = dict(zip(dims, index, strict=True))
        sel = {dim: values[i] for dim, values, i in zip(dims, coordinates, index, strict=True)}
        yield labeller.make_label_flat(name, sel, isel)


def _block_diagnostics(x: np.ndarray) -> np.ndarray:
    """`arviz.stats.diagnostics._multichain_statistics` of each row of ``x`` (n, chain, draw)."""
    n, num_chains, num_draws = x.shape
    out = np.full((n, len(DIAGNOSTICS)), np.nan)
    if num_draws < MIN_DRAWS or num_chains < 1:
        return out
    finite = np.isfinite(x).all(axis=(1, 2))
    nan = np.isnan(x).any(axis=(1, 2))
    for row in np.nonzero(~finite & ~nan)[0]:
        out[row] = _multichain_statistics(x[row])
    if not finite.any():
        return out
    x = x[finite]
    flat = x.reshape(len(x), -1)
    z_split = _z_scale(_split_chains(x))

    low, high = _quantiles(flat, (0.05, 0.95))
    ess_low = _ess(_split_chains(x <= low[:, None, None]))
    ess_high = _ess(_split_chains(x <= high[:, None, None]))
    ess_tail = np.where(ess_high < ess_low, ess_high, ess_low)

    r_hat = np.full(len(x), np.nan)
    if num_chains >= 2:
        bulk = _rhat(z_split)
        folded = np.abs(x - np.median(flat, axis=1)[:, None, None])
        tail = _rhat(_z_scale(_split_chains(folded)))
        r_hat = np.where(tail > bulk, tail, bulk)

    squares = (x - flat.mean(axis=1)[:, None, None]) ** 2
    squares_sum = squares.reshape(len(x), -1).sum(axis=1)
    size = num_chains * num_draws
    mcse_mean = np.sqrt(squares_sum / (size - 1) / _ess(_split_chains(x)))
    evar = squares_sum / size
    varvar = ((squares**2).mean(axis=(1, 2)) - evar**2) / _ess(_split_chains(squares))
    mcse_sd = np.sqrt(varvar / evar / 4)

    out[finite] = np.stack([mcse_mean, mcse_sd, _ess(z_split), ess_tail, r_hat], axis=-1)
    return out


def _split_chains(x: np.ndarray) -> np.ndarray:
    """Split each chain of ``x`` (n, chain, draw) in two halves; an odd middle draw is dropped."""
    half = x.shape[2] // 2
    return np.concatenate([x[:, :, :half], x[:, :, x.shape[2] - half :]], axis=1)


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Return the normal scores of the pooled ranks of each row of ``x`` (Blom's offset 3/8)."""
    flat = x.reshape(len(x), -1)
    rank = _average_ranks(flat)
    return special.ndtri((rank - 3 / 8) / (flat.shape[1] - 2 * 3 / 8 + 1)).reshape(x.shape)


def _average_ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks from 1 along each row, ties sharing their mean rank (`scipy.stats.rankdata`)."""
    n, m = flat.shape
    order = np.argsort(flat, axis=1)
    ordered = np.take_along_axis(flat, order, axis=1)
    sorted_ranks = np.broadcast_to(np.arange(1.0, m + 1), (n, m)).copy()
    starts = np.ones((n, m), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    tied = ~starts.all(axis=1)
    if tied.any():
        starts = starts[tied]
        ends = np.ones_like(starts)
        ends[:, :-1] = starts[:, 1:]
        positions = np.broadcast_to(np.arange(m), starts.shape)
        first = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, positions, m - 1)[:, ::-1], axis=1)[:, ::-1]
        sorted_ranks[tied] = (first + last) / 2 + 1
    ranks = np.empty((n, m))
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


def _quantiles(flat: np.ndarray, probs: tuple[float, ...]) -> list[np.ndarray]:
    """R's type-7 quantiles of each row, by `scipy.stats.mstats.mquantiles`' arithmetic."""
    ordered = np.sort(flat, axis=1)
    n = flat.shape[1]
    out = []
    for p in probs:
        aleph = n * p + (1 - p)
        k = int(np.floor(np.clip(aleph, 1, n - 1)))
        gamma = np.clip(aleph - k, 0, 1)
        out.append((1.0 - gamma) * ordered[:, k - 1] + gamma * ordered[:, k])
    return out


def _rhat(x: np.ndarray) -> np.ndarray:
    """Gelman-Rubin R-hat of each row of ``x`` (n, chain, draw)."""
    num_draws = x.shape[2]
    between = num_draws * np.var(x.mean(axis=2), axis=1, ddof=1)
    within = np.mean(np.var(x, axis=2, ddof=1), axis=1)
    return np.sqrt((between / within + num_draws - 1) / num_draws)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain at every lag, along the last axis, by FFT."""
    n = x.shape[-1]
    m = next_fast_len(2 * n)
    spectrum = fft.rfft(x - x.mean(axis=-1, keepdims=True), n=m, axis=-1, workers=1)
    spectrum *= np.conjugate(spectrum)
    return fft.irfft(spectrum, n=m, axis=-1, workers=1)[..., :n] / n


def _ess(x: np.ndarray) -> np.ndarray:
    """Effective sample size of each row of ``x`` (n, chain, draw).

    Geyer's initial monotone sequence, truncated at the first non-positive pair of
    autocorrelations.
    """
    x = np.asarray(x, dtype=float)
    n, num_chains, num_draws = x.shape
    size = num_chains * num_draws
    acov = _autocovariance(x)
    mean_var = acov[:, :, 0].mean(axis=1) * num_draws / (num_draws - 1.0)
    var_plus = mean_var * (num_draws - 1.0) / num_draws
    if num_chains > 1:
        var_plus = var_plus + np.var(x.mean(axis=2), axis=1, ddof=1)
    rho = 1.0 - (mean_var[:, None] - acov.mean(axis=1)) / var_plus[:, None]
    rho[:, 0] = 1.0

    # Pair j sums the autocorrelations at lags 2j and 2j + 1; pairs beyond the first are
    # read while the one before is positive, and at most up to lag num_draws - 2.
    last = max(0, (num_draws - 3) // 2)
    pairs = rho[:, 0 : 2 * last + 2 : 2] + rho[:, 1 : 2 * last + 2 : 2]
    stops = ~(pairs > 0)
    never = np.ones((n, 1), dtype=bool)
    first_stop = np.minimum(np.argmax(np.concatenate([stops[:, 1:], never], 1), 1) + 1, last)
    count = np.where(stops[:, 0], 0, first_stop)  # pairs read after the first
    # Monotone: each pair at most the one before; the sum runs over pairs 0 .. count - 1.
    monotone = np.minimum.accumulate(pairs, axis=1)
    read = np.arange(pairs.shape[1]) < count[:, None]
    summed = np.where(read, monotone, 0.0).sum(axis=1)
    # The even lag of the last pair read counts once, when that pair or that lag is positive.
    rows = np.arange(n)
    last_even = rho[rows, 2 * count]
    last_pair = pairs[rows, count]
    extra = np.where((last_pair >= 0) | (last_even > 0), last_even, 0.0)
    extra = np.where(count == 0, 1.0, extra)
    tau = np.maximum(-1.0 + 2.0 * summed + extra, 1 / np.log10(size))
    constant = (x.max(axis=(1, 2)) - x.min(axis=(1, 2))) < np.finfo(float).resolution
    return np.where(constant, float(size), size / tau)
