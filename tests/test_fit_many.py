import numpy as np
import pytest

import bayescale as bs

# 2 x 1000 draws: with 2 x 500, about one seed in twelve gave an R-hat above 1.01 by chance.
SETTINGS = {"num_warmup": 500, "num_samples": 1000, "num_chains": 2}


@pytest.fixture(scope="module")
def halves(chinchilla_runs):
    """Two disjoint halves of the Chinchilla runs: same shape, different data."""
    order = np.argsort(chinchilla_runs["flops"].to_numpy())
    return chinchilla_runs.iloc[order[::2]], chinchilla_runs.iloc[order[1::2]]


@pytest.mark.parametrize("warmup", ["standard", "laplace"])
def test_batched_fits_match_single_fits(halves, warmup):
    # Batched lanes start in one vectorised start-up loop, single fits one chain per device.
    model = bs.ScalingModel("chinchilla", noise="lognormal")
    batched = bs.fit_many(model, list(halves), seed=3, warmup=warmup, **SETTINGS)
    assert len(batched) == 2
    for table, many in zip(halves, batched, strict=True):
        single = model.fit(table, seed=5, **SETTINGS)
        assert many.diagnostics.ok and single.diagnostics.ok
        a, b = many.summary(), single.summary()
        for name in ("E", "alpha", "beta", "sigma"):
            # Two independent Monte Carlo estimates of one posterior mean agree within 4 MCSE.
            tolerance = 4 * np.hypot(a.loc[name, "mcse_mean"], b.loc[name, "mcse_mean"])
            assert abs(a.loc[name, "mean"] - b.loc[name, "mean"]) < tolerance, name
        assert many.spec == single.spec
        assert many.meta["sampler"]["chain_method"] == "batched"
    # Different data give different posteriors: the tables were not mixed up.
    assert batched[0].summary().loc["E", "mean"] != batched[1].summary().loc["E", "mean"]


def test_tables_of_different_shapes_are_refused(halves):
    model = bs.ScalingModel("chinchilla")
    with pytest.raises(bs.SpecError, match="one shape"):
        bs.fit_many(model, [halves[0], halves[1].iloc[:-1]])
    with pytest.raises(bs.SpecError, match="at least one"):
        bs.fit_many(model, [])
