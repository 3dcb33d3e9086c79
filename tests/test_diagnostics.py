"""The vectorised diagnostics give ArviZ's table, row for row."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayescale import diagnostics


def assert_same_as_arviz(idata: az.InferenceData) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = az.summary(idata, kind="diagnostics", round_to="none")
        table = diagnostics.summary(idata)
    assert list(table.index) == list(expected.index)
    pd.testing.assert_frame_equal(table[expected.columns], expected, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:Shape validation failed")
@pytest.mark.parametrize("chains, draws", [(4, 1000), (3, 501), (2, 7), (1, 50), (2, 4)])
def test_every_column_equals_arviz(rng, chains, draws):
    shape = (chains, draws)
    walk = np.cumsum(rng.normal(size=(*shape, 20)), axis=1) * 0.05
    posterior = {
        "mixing": walk + rng.normal(size=(*shape, 20)),  # slow: long autocorrelation
        "antithetic": (-1.0) ** np.arange(draws) * 0.5 + 0.1 * rng.normal(size=shape),
        "ties": np.round(rng.normal(size=(*shape, 2, 3)), 1),
        "stuck": np.ones(shape),
        "heavy": rng.standard_t(2, size=shape),
    }
    assert_same_as_arviz(az.from_dict(posterior=posterior))


def test_a_parameter_with_a_nan_draw_has_nan_diagnostics(rng):
    values = rng.normal(size=(2, 100, 3))
    values[1, 5, 2] = np.nan
    table = diagnostics.summary(az.from_dict(posterior={"x": values}))
    assert table.loc["x[2]"].isna().all()
    assert table.loc[["x[0]", "x[1]"]].notna().all().all()


def test_a_fit_with_named_groups_gets_arviz_labels(grouped_post):
    assert_same_as_arviz(grouped_post.idata)
