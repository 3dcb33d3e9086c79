"""Questions asked of a fit, checked against direct NumPy computations on its posterior draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import DataError, SpecError

AT = pd.DataFrame(
    {"params": [7e10, 1e9, 4e8], "tokens": [1.4e12, 2e10, 8e9]},
    index=pd.Index(["chinchilla-70b", "1b", "400m"], name="model"),
)
GROUPED_AT = pd.DataFrame(
    {"flops": [1e20, 3e21, 1e23, 1e23], "dataset": ["refinedweb", "c4", "c4", "redpajama"]},
    index=pd.Index([10, 20, 30, 40], name="point"),
)
Z = 4.5  # standard deviations of Monte Carlo error allowed


def _paper_draws(post, names, group_labels=None):
    """Posterior draws in the papers' convention, float64, shape (draws, rows) per parameter."""
    posterior = post.idata.posterior
    out = {}
    for name in names:
        values = posterior[name]
        if post.spec.group and post.spec.group in values.dims:
            columns = [values.sel({post.spec.group: g}).values.ravel() for g in group_labels]
            out[name] = np.stack(columns, axis=1).astype(np.float64)
        else:
            out[name] = values.values.ravel().astype(np.float64)[:, None]
    return out


def _chinchilla_direct(post, at):
    p = _paper_draws(post, ["E", "A", "alpha", "B", "beta"])
    n = at["params"].to_numpy(dtype=np.float64)
    d = at["tokens"].to_numpy(dtype=np.float64)
    return p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]


def _power_direct(post, at):
    p = _paper_draws(post, ["E", "A", "alpha"], group_labels=list(at["dataset"]))
    x = at["flops"].to_numpy(dtype=np.float64)
    return p["E"] + p["A"] * x ** -p["alpha"]


def _summaries(draws, ci_prob=0.9):
    tail = (1 - ci_prob) / 2
    return {
        "mean": draws.mean(axis=0),
        "median": np.median(draws, axis=0),
        "lower": np.quantile(draws, tail, axis=0),
        "upper": np.quantile(draws, 1 - tail, axis=0),
    }


# -- forecast ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["predictive", "mean"])
def test_forecast_shape_columns_and_index(chinchilla_post, kind):
    out = bs.forecast(chinchilla_post, AT, kind=kind)
    assert list(out.columns) == ["mean", "median", "lower", "upper"]
    pd.testing.assert_index_equal(out.index, AT.index)
    assert (out["lower"] < out["median"]).all() and (out["median"] < out["upper"]).all()


def test_mean_forecast_equals_direct_computation(chinchilla_post):
    out = bs.forecast(chinchilla_post, AT, ci_prob=0.8, kind="mean")
    direct = _chinchilla_direct(chinchilla_post, AT)
    assert direct.shape == (2000, 3)
    for column, values in _summaries(direct, ci_prob=0.8).items():
        np.testing.assert_allclose(out[column].to_numpy(), values, rtol=1e-4, err_msg=column)


def test_grouped_mean_forecast_uses_each_rows_group(grouped_post):
    out = bs.forecast(grouped_post, GROUPED_AT, kind="mean")
    pd.testing.assert_index_equal(out.index, GROUPED_AT.index)
    direct = _power_direct(grouped_post, GROUPED_AT)
    for column, values in _summaries(direct).items():
        np.testing.assert_allclose(out[column].to_numpy(), values, rtol=1e-4, err_msg=column)
    # Same budget, different dataset: different forecasts.
    assert out.loc[30, "median"] != pytest.approx(out.loc[40, "median"], rel=1e-3)


def test_forecast_follows_rows_not_positions(chinchilla_post, grouped_post):
    for post, at in ((chinchilla_post, AT), (grouped_post, GROUPED_AT)):
        forward = bs.forecast(post, at, kind="mean")
        backward = bs.forecast(post, at.iloc[::-1], kind="mean")
        pd.testing.assert_frame_equal(backward.loc[forward.index], forward, rtol=1e-6)


def test_predictive_forecast_is_wider_than_the_mean(chinchilla_post):
    predictive = bs.forecast(chinchilla_post, AT, kind="predictive")
    mean = bs.forecast(chinchilla_post, AT, kind="mean")
    assert ((predictive["upper"] - predictive["lower"]) > (mean["upper"] - mean["lower"])).all()


def test_predictive_forecast_is_seeded(chinchilla_post):
    first = bs.forecast(chinchilla_post, AT, seed=3)
    pd.testing.assert_frame_equal(first, bs.forecast(chinchilla_post, AT, seed=3))
    assert not first.equals(bs.forecast(chinchilla_post, AT, seed=4))


def test_ci_prob_sets_the_interval(chinchilla_post):
    wide = bs.forecast(chinchilla_post, AT, ci_prob=0.95, kind="mean")
    narrow = bs.forecast(chinchilla_post, AT, ci_prob=0.5, kind="mean")
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()


@pytest.mark.parametrize("ci_prob", [0.0, 1.0, 90])
def test_forecast_rejects_bad_ci_prob(chinchilla_post, ci_prob):
    with pytest.raises(SpecError, match="ci_prob"):
        bs.forecast(chinchilla_post, AT, ci_prob=ci_prob)


def test_forecast_rejects_bad_kind(chinchilla_post):
    with pytest.raises(SpecError, match="kind"):
        bs.forecast(chinchilla_post, AT, kind="posterior")


def test_forecast_checks_at(chinchilla_post):
    with pytest.raises(DataError, match="tokens"):
        bs.forecast(chinchilla_post, AT.drop(columns="tokens"))
    bad = AT.copy()
    bad.loc["1b", "params"] = -1.0
    with pytest.raises(DataError, match=r"'params'.*\b1b\b"):
        bs.forecast(chinchilla_post, bad)
    with pytest.raises(DataError, match="empty"):
        bs.forecast(chinchilla_post, AT.iloc[:0])
    with pytest.raises(TypeError, match="DataFrame"):
        bs.forecast(chinchilla_post, {"params": [1e9], "tokens": [2e10]})


# -- groups in 'at' ------------------------------------------------------------------------------


def test_unknown_group_label_names_the_rows(grouped_post):
    at = GROUPED_AT.assign(dataset=["c4", "the_pile", "c4", "github"])
    for ask in (bs.forecast, lambda p, a: bs.prob_reached(p, 3.0, a)):
        with pytest.raises(DataError) as info:
            ask(grouped_post, at)
        message = str(info.value)
        assert "'dataset'" in message
        assert "20" in message and "40" in message
        assert "'the_pile'" in message and "'github'" in message
        assert "10" not in message.split("Known")[0]


def test_missing_group_column(grouped_post):
    with pytest.raises(DataError, match="'dataset'"):
        bs.forecast(grouped_post, GROUPED_AT.drop(columns="dataset"))


def test_missing_group_label_in_at(grouped_post):
    at = GROUPED_AT.astype({"dataset": object})
    at.loc[30, "dataset"] = None
    with pytest.raises(DataError, match=r"'dataset'.*\b30\b"):
        bs.forecast(grouped_post, at)


# -- prob_reached --------------------------------------------------------------------------------


def test_prob_reached_mean_equals_fraction_of_direct_draws(chinchilla_post):
    direct = _chinchilla_direct(chinchilla_post, AT)
    for target in np.quantile(direct[:, 0], [0.1, 0.5, 0.8]):
        got = bs.prob_reached(chinchilla_post, float(target), AT, kind="mean")
        expected = (direct <= target).mean(axis=0)
        # The package evaluates the law in float32: only draws within float32 error of the
        # target may land on the other side.
        ambiguous = (np.abs(direct - target) <= 1e-5 * target).mean(axis=0)
        assert got.shape == (3,)
        np.testing.assert_array_less(np.abs(got - expected), ambiguous + 1e-12)


def test_grouped_prob_reached_mean_equals_direct(grouped_post):
    direct = _power_direct(grouped_post, GROUPED_AT)
    target = float(np.median(direct[:, 2]))
    got = bs.prob_reached(grouped_post, target, GROUPED_AT, kind="mean")
    ambiguous = (np.abs(direct - target) <= 1e-5 * target).mean(axis=0)
    np.testing.assert_array_less(np.abs(got - (direct <= target).mean(axis=0)), ambiguous + 1e-12)


def test_prob_reached_predictive_agrees_with_predictive_draws(chinchilla_post):
    for row in AT.index:
        at = AT.loc[[row]]
        draws = np.concatenate(
            [bs.predictive_draws(chinchilla_post, at, seed=s)[:, 0] for s in range(5)]
        )
        n = draws.size
        # Targets in both tails as well as the centre: at the median any symmetric noise agrees,
        # in the tails only the right noise CDF (Student-t here) does. Placed with other draws.
        held_out = bs.predictive_draws(chinchilla_post, at, seed=100)[:, 0]
        for target in np.quantile(held_out, [0.1, 0.5, 0.85]):
            p = float(bs.prob_reached(chinchilla_post, float(target), at)[0])
            fraction = float((draws <= target).mean())
            # Each indicator is Bernoulli with its draw's probability: the fraction's sd is at
            # most the binomial sqrt(p (1 - p) / n).
            assert 0.02 < p < 0.98
            assert abs(fraction - p) <= Z * np.sqrt(p * (1 - p) / n), (row, target, fraction, p)


def test_predictive_draws_shapes(chinchilla_post):
    assert bs.predictive_draws(chinchilla_post, AT).shape == (2000, 3)
    mean = bs.predictive_draws(chinchilla_post, AT, kind="mean")
    np.testing.assert_allclose(mean, _chinchilla_direct(chinchilla_post, AT), rtol=1e-4)


@pytest.mark.parametrize("kind", ["predictive", "mean"])
def test_prob_reached_is_monotone_in_target(chinchilla_post, kind):
    targets = np.linspace(1.8, 2.6, 41)
    probs = np.stack([bs.prob_reached(chinchilla_post, t, AT, kind=kind) for t in targets])
    assert np.all((probs >= 0) & (probs <= 1))
    assert np.all(np.diff(probs, axis=0) >= 0)
    if kind == "predictive":  # a continuous CDF: strictly increasing where it is not saturated
        inner = (probs[:-1] > 1e-9) & (probs[1:] < 1 - 1e-9)
        assert np.all(np.diff(probs, axis=0)[inner] > 0)
    assert probs[0, 0] < 0.05 and probs[-1, 0] > 0.95  # the range spans the 70B forecast


def test_bigger_models_reach_a_target_more_often(chinchilla_post):
    p = bs.prob_reached(chinchilla_post, 2.3, AT)
    assert p[0] > p[1] > p[2]


@pytest.mark.parametrize("target", [0.0, -1.0, np.inf, np.nan])
def test_prob_reached_rejects_bad_target(chinchilla_post, target):
    with pytest.raises(SpecError, match="target"):
        bs.prob_reached(chinchilla_post, target, AT)


# -- optimal allocation --------------------------------------------------------------------------


def test_optimal_allocation_matches_the_closed_form(chinchilla_post):
    budgets = np.array([1e21, 5.76e23])
    out = bs.optimal_allocation(chinchilla_post, budgets)
    assert len(out) == 2
    np.testing.assert_array_equal(out["flops"], budgets)
    p = {
        k: v[:, 0]
        for k, v in _paper_draws(chinchilla_post, ["E", "A", "alpha", "B", "beta"]).items()
    }
    a, b = p["alpha"], p["beta"]
    g = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    for i, budget in enumerate(budgets):
        n_opt = g * (budget / 6) ** (b / (a + b))
        d_opt = budget / 6 / n_opt
        loss = p["E"] + p["A"] * n_opt**-a + p["B"] * d_opt**-b
        for name, values in (
            ("params", n_opt),
            ("tokens", d_opt),
            ("tokens_per_param", d_opt / n_opt),
        ):
            assert out.loc[i, f"{name}_median"] == pytest.approx(np.median(values), rel=0.02), name
            assert out.loc[i, f"{name}_lower"] == pytest.approx(np.quantile(values, 0.05), rel=0.02)
            assert out.loc[i, f"{name}_upper"] == pytest.approx(np.quantile(values, 0.95), rel=0.02)
        assert out.loc[i, "loss_median"] == pytest.approx(np.median(loss), rel=1e-4)
    # Bigger budgets buy bigger models.
    assert out.loc[1, "params_median"] > out.loc[0, "params_median"]


def test_optimal_allocation_needs_params_and_tokens(grouped_post):
    with pytest.raises(SpecError, match="params"):
        bs.optimal_allocation(grouped_post, 1e21, group="c4")


@pytest.mark.parametrize("flops", [0.0, -1e21, np.inf])
def test_optimal_allocation_rejects_bad_budgets(chinchilla_post, flops):
    with pytest.raises(SpecError, match="flops"):
        bs.optimal_allocation(chinchilla_post, flops)
