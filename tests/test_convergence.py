"""The vectorised diagnostics give ArviZ's numbers, row for row."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from arviz.labels import BaseLabeller
from arviz.sel_utils import xarray_var_iter
from arviz.stats.diagnostics import _ess as arviz_ess

import bayescale as bs
from bayescale.convergence import BLOCK, _ess, diagnostics_table, summary_statistics


def autoregressive(rng: np.random.Generator, chains: int, draws: int, phi: float) -> np.ndarray:
    """AR(1) chains with coefficient ``phi``: autocorrelations from alternating to near 1."""
    x = np.zeros((chains, draws))
    noise = rng.normal(size=(chains, draws))
    for t in range(draws):
        x[:, t] = (phi * x[:, t - 1] if t else 0.0) + noise[:, t]
    return x


def awkward_draws(chains: int, draws: int, seed: int = 0) -> xr.Dataset:
    """Draws with every case the formulas branch on: mixing from poor to alternating, ties,
    a constant, chains that disagree, NaN, inf, heavy tails; a scalar and a vector variable."""
    rng = np.random.default_rng(seed)
    columns = [autoregressive(rng, chains, draws, phi) for phi in (-0.9, -0.3, 0.0, 0.5, 0.9, 0.99)]
    columns += [
        np.ones((chains, draws)),  # constant
        np.round(rng.normal(size=(chains, draws))),  # ties
        rng.standard_t(1.5, size=(chains, draws)),  # heavy tails
        rng.normal(size=(chains, draws)) + 3 * np.arange(chains)[:, None],  # stuck chains
        rng.normal(size=(chains, draws)) < -1.5,  # an indicator
    ]
    x = np.stack(columns, axis=-1).astype(float)
    x[0, 0, 2] = np.nan
    x[-1, -1, 3] = np.inf
    labels = [f"t{i:02d}" for i in range(x.shape[-1])]
    return xr.Dataset(
        {"a": (("chain", "draw", "g"), x), "b": (("chain", "draw"), x[..., 5])},
        coords={"g": labels},
    )


def arviz_diagnostics(posterior: xr.Dataset) -> pd.DataFrame:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return az.summary(posterior, kind="diagnostics", round_to="none")


@pytest.mark.parametrize(
    ("chains", "draws"), [(4, 1000), (4, 251), (1, 100), (2, 7), (3, 5), (4, 4), (4, 3)]
)
def test_diagnostics_match_arviz_on_every_case(chains: int, draws: int) -> None:
    posterior = awkward_draws(chains, draws)
    expected = arviz_diagnostics(posterior)
    got = diagnostics_table(posterior)
    pd.testing.assert_index_equal(got.index, expected.index)
    pd.testing.assert_index_equal(got.columns, expected.columns)
    np.testing.assert_array_equal(got.isna().to_numpy(), expected.isna().to_numpy())
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-10)


def test_diagnostics_match_arviz_across_blocks() -> None:
    """More parameters than one block: rows stay in order across the threads' blocks."""
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(4, 60, BLOCK + 37)), axis=1) * rng.uniform(0.1, 1, BLOCK + 37)
    posterior = xr.Dataset({"v": (("chain", "draw", "k"), x)})
    expected = arviz_diagnostics(posterior)
    got = diagnostics_table(posterior)
    pd.testing.assert_index_equal(got.index, expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-10)


def test_fit_diagnostics_are_arvizs(grouped_post: bs.Posterior) -> None:
    expected = arviz_diagnostics(grouped_post.idata.posterior)
    pd.testing.assert_frame_equal(grouped_post.diagnostics.table, expected, rtol=1e-10)


def test_summary_statistics_match_numpy_per_parameter(grouped_post: bs.Posterior) -> None:
    posterior = grouped_post.idata.posterior
    got = summary_statistics(posterior, ci_prob=0.8)
    stats = az.summary(posterior, kind="stats", round_to="none")
    pd.testing.assert_index_equal(got.index, stats.index)
    np.testing.assert_allclose(got["mean"], stats["mean"], rtol=1e-12)
    np.testing.assert_allclose(got["sd"], stats["sd"], rtol=1e-12)
    labeller = BaseLabeller()
    for name, sel, isel, values in xarray_var_iter(posterior, combined=True):
        label = labeller.make_label_flat(name, sel, isel)
        expected = np.quantile(np.ravel(values), [0.1, 0.5, 0.9])
        np.testing.assert_allclose(got.loc[label, ["lower", "median", "upper"]], expected)


def test_ess_matches_arviz_where_the_last_pair_decides() -> None:
    """Short, alternating random walks: the autocorrelation pairs stay positive up to the last
    lag read, and some end on a negative even lag, a branch of Geyer's sequence that longer
    chains rarely reach."""
    rng = np.random.default_rng(0)
    walks = np.cumsum(rng.normal(size=(1000, 2, 8)), axis=2)
    x = walks * rng.choice([-1, 1], size=(1000, 1, 1)) ** np.arange(8)
    expected = [arviz_ess(row) for row in x]
    np.testing.assert_allclose(_ess(x), expected, rtol=1e-10)
