import matplotlib.pyplot as plt
import numpy as np

import bayescale as bs


def test_plot_fit_draws_runs_and_one_band_per_group(grouped_post):
    runs = bs.fitted_runs(grouped_post).rename(columns={"observed": "loss"})
    curve = bs.law_curve(grouped_post, num=20)
    fig = bs.plot_fit(runs, curve, x="flops", y="loss", group="dataset")
    ax = fig.axes[0]
    assert len(ax.collections) == 2 * 3  # a band and a scatter per group
    scattered = sum(len(c.get_offsets()) for c in ax.collections if c.get_offsets().size)
    assert scattered >= len(runs)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "flops"
    plt.close(fig)


def test_law_curve_extends_past_the_data_and_is_ordered(grouped_post):
    curve = bs.law_curve(grouped_post, num=30, extend_decades=2.0)
    largest = grouped_post.data.scales["flops"].max()
    assert np.isclose(curve["flops"].max(), largest * 100)
    assert len(curve) == 30 * len(grouped_post.spec.labels)
    assert (curve["lower"] <= curve["median"]).all() and (curve["median"] <= curve["upper"]).all()


def test_fitted_runs_align_with_observed(chinchilla_post):
    table = bs.fitted_runs(chinchilla_post)
    np.testing.assert_array_equal(table["observed"], chinchilla_post.data.y)
    covered = ((table["lower"] <= table["observed"]) & (table["observed"] <= table["upper"])).mean()
    assert 0.8 < covered <= 1.0  # 90% predictive intervals cover most runs in-sample
    fig = bs.plot_predicted_vs_observed(table, y="loss")
    assert fig.axes[0].get_ylabel() == "observed loss"
    plt.close(fig)
