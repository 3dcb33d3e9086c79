"""Extreme but valid inputs sample without NaN; bad sampling is carried by every output."""

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.posterior import Posterior

QUICK = {"num_warmup": 300, "num_samples": 300, "num_chains": 2}


# These tests check that extreme inputs give finite draws; short runs on them may well fail the
# sampling checks, which is reported as a SamplingWarning and is not what is tested here.
tolerate_bad_sampling = pytest.mark.filterwarnings("ignore::bayescale.errors.SamplingWarning")


def _fit(model, frame, seed=0):
    return model.fit(frame, seed=seed, **QUICK)


def _all_finite(post):
    return all(np.isfinite(post.idata.posterior[v].values).all() for v in post.idata.posterior)


@tolerate_bad_sampling
def test_ten_orders_of_magnitude_of_scale(rng):
    flops = np.logspace(13, 23, 40)
    loss = (1.7 + 2000 * flops**-0.15) * np.exp(0.01 * rng.standard_normal(40))
    post = _fit(bs.ScalingModel("power", x="flops"), pd.DataFrame({"flops": flops, "loss": loss}))
    assert _all_finite(post)
    summary = post.summary()
    # Recovery proper is tested elsewhere; here, only that the answer is not off the scale.
    assert abs(summary.loc["alpha", "median"] - 0.15) < 5 * summary.loc["alpha", "sd"]


@tolerate_bad_sampling
def test_losses_at_the_floor(rng):
    flops = np.logspace(18, 22, 30)
    loss = (2.0 + 1e-4 * (flops / 1e18) ** -0.3) * np.exp(0.002 * rng.standard_normal(30))
    post = _fit(bs.ScalingModel("power", x="flops"), pd.DataFrame({"flops": flops, "loss": loss}))
    assert _all_finite(post)
    forecast = bs.forecast(post, pd.DataFrame({"flops": [1e24]}))
    assert np.isfinite(forecast.to_numpy()).all()
    assert forecast["median"].iloc[0] == pytest.approx(2.0, rel=0.02)


@tolerate_bad_sampling
def test_group_with_one_run_under_partial_pooling(rng):
    frames = []
    for task, (e, n) in {"a": (2.0, 15), "b": (2.4, 15), "c": (2.2, 1)}.items():
        flops = np.logspace(18, 21, n) if n > 1 else np.array([1e20])
        loss = (e + 50 * flops**-0.1) * np.exp(0.01 * rng.standard_normal(n))
        frames.append(pd.DataFrame({"flops": flops, "loss": loss, "task": task}))
    frame = pd.concat(frames, ignore_index=True)
    post = _fit(bs.ScalingModel("power", x="flops", group="task"), frame)
    assert _all_finite(post)
    assert post.idata.posterior["E"].sizes["task"] == 3


def test_every_output_carries_bad_diagnostics(chinchilla_post, tmp_path):
    idata = chinchilla_post.idata.copy()
    idata.sample_stats["diverging"][0, :5] = True
    bad = Posterior(idata, chinchilla_post.spec, chinchilla_post.meta)
    at = pd.DataFrame({"params": [7e10], "tokens": [1.4e12]})
    with pytest.warns(bs.SamplingWarning, match="5 divergent") as caught:
        summary = bad.summary()
        table = bs.forecast(bad, at)
        bs.prob_reached(bad, 1.95, at)
        bs.optimal_allocation(bad, 5.76e23)
    assert len(caught) >= 4
    assert any("5 divergent" in p for p in summary.attrs["sampling_problems"])
    assert table.attrs["sampling_problems"] == bad.diagnostics.problems
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_strict_fit_raises(chinchilla_runs):
    with pytest.raises(bs.SamplingError, match="ESS"):
        bs.ScalingModel("chinchilla").fit(
            chinchilla_runs, seed=0, strict=True, num_warmup=20, num_samples=20, num_chains=2
        )


def test_save_load_save_keeps_data_bytes_and_answers(chinchilla_post, tmp_path):
    first = chinchilla_post.save(tmp_path / "a.nc")
    loaded = bs.load(first)
    second = loaded.save(tmp_path / "b.nc")
    again = bs.load(second)
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"):
        a, b = chinchilla_post.idata[group], again.idata[group]
        for name in a.data_vars:
            before, after = a[name].values, b[name].values
            if before.dtype.kind in "fiub":
                assert before.tobytes() == after.tobytes(), (group, name)
            else:  # text (row labels): same values; the fixed width may differ
                assert np.array_equal(before, after), (group, name)
    at = pd.DataFrame({"params": [1e10, 7e10], "tokens": [2e11, 1.4e12]})
    pd.testing.assert_frame_equal(bs.forecast(chinchilla_post, at), bs.forecast(again, at))
    assert not list(tmp_path.glob("*.tmp"))  # atomic save leaves no temporary file
