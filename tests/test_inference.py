"""NUTS fits: reproducibility and sampler bookkeeping (recovery lives in test_recovery.py)."""

from __future__ import annotations

import jax
import numpy as np

import bayescale as bs
from bayescale.inference import _sampler_config, chain_method


def test_chain_method_follows_the_devices():
    assert chain_method(1) == "vectorized"
    expected = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    assert chain_method(2) == expected
    assert chain_method(jax.local_device_count() + 1) == "vectorized"


def test_sampler_settings_are_recorded(chinchilla_post):
    sampler = chinchilla_post.meta["sampler"]
    assert sampler["seed"] == 1
    assert (sampler["num_warmup"], sampler["num_samples"], sampler["num_chains"]) == (500, 500, 2)
    assert sampler["dense_mass"] is True  # a default that was not overridden
    assert sampler["chain_method"] == chain_method(2)
    assert chinchilla_post.idata.posterior.sizes == {"chain": 2, "draw": 500}
    assert set(chinchilla_post.meta["versions"]) >= {"bayescale", "numpyro", "jax", "arviz"}


def test_partial_pooling_samples_with_smaller_steps(gadre_c4_runs):
    def config(**kwargs):
        model = bs.ScalingModel("power", x="flops", **kwargs)
        spec, _ = model.specify(gadre_c4_runs)
        return _sampler_config(model, spec, {})

    assert config()["target_accept_prob"] == 0.8
    assert (
        config(group="dataset", pooling={"E": "shared", "A": "shared"})["target_accept_prob"] == 0.8
    )
    assert config(group="dataset")["target_accept_prob"] == 0.95  # E and A partial by default
    model = bs.ScalingModel("power", x="flops", group="dataset")
    spec, _ = model.specify(gadre_c4_runs)
    assert _sampler_config(model, spec, {"target_accept_prob": 0.9})["target_accept_prob"] == 0.9


def test_log_likelihood_is_of_the_response(chinchilla_post, chinchilla_runs):
    loglik = chinchilla_post.idata.log_likelihood["loss"]
    assert loglik.shape == (2, 500, len(chinchilla_runs))
    assert np.isfinite(loglik.values).all()
    np.testing.assert_array_equal(
        chinchilla_post.idata.observed_data["loss"].values, chinchilla_runs["loss"].to_numpy()
    )


def test_same_seed_same_draws(chinchilla_post, chinchilla_runs):
    sampler = chinchilla_post.meta["sampler"]
    settings = {k: sampler[k] for k in ("seed", "num_warmup", "num_samples", "num_chains")}
    again = bs.ScalingModel("chinchilla").fit(chinchilla_runs, **settings)
    for name in chinchilla_post.idata.posterior.data_vars:
        assert np.array_equal(
            again.idata.posterior[name].values, chinchilla_post.idata.posterior[name].values
        ), name
