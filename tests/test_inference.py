"""NUTS fits: reproducibility and sampler bookkeeping (recovery lives in test_recovery.py)."""

from __future__ import annotations

import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayescale as bs
from bayescale import sampler
from bayescale._devices import HOST_DEVICES_FLAG, use_cpu_cores_for_chains
from bayescale.inference import _sampler_config, chain_method


def test_chain_method_follows_the_devices():
    assert chain_method(1) == "vectorized"
    expected = "parallel" if jax.local_device_count() >= 2 else "vectorized"
    assert chain_method(2) == expected
    assert chain_method(jax.local_device_count() + 1) == "vectorized"


def test_sampler_settings_are_recorded(chinchilla_post):
    sampler = chinchilla_post.meta["sampler"]
    assert sampler["seed"] == 1
    assert (sampler["num_warmup"], sampler["num_samples"], sampler["num_chains"]) == (500, 1000, 2)
    assert sampler["dense_mass"] is True  # a default that was not overridden
    assert sampler["chain_method"] == chain_method(2)
    assert chinchilla_post.idata.posterior.sizes == {"chain": 2, "draw": 1000}
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


def test_log_likelihood_is_each_draws_density_of_the_response(chinchilla_post, chinchilla_runs):
    loglik = chinchilla_post.idata.log_likelihood["loss"]
    assert loglik.shape == (2, 1000, len(chinchilla_runs))
    np.testing.assert_array_equal(
        chinchilla_post.idata.observed_data["loss"].values, chinchilla_runs["loss"].to_numpy()
    )
    draws = {k: v.values[..., None] for k, v in chinchilla_post.idata.posterior.items()}
    n, d, y = (chinchilla_runs[c].to_numpy() for c in ("params", "tokens", "loss"))
    mean = draws["E"] + draws["A"] * n ** -draws["alpha"] + draws["B"] * d ** -draws["beta"]
    # Student-t on log loss, and the Jacobian of log: the density of the loss itself.
    expected = stats.t.logpdf(np.log(y), draws["nu"], np.log(mean), draws["sigma"]) - np.log(y)
    np.testing.assert_allclose(loglik.values, expected, atol=2e-3)


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")  # runs too short to mix
def test_releasing_free_memory_leaves_the_draws_alone(chinchilla_runs, monkeypatch):
    settings = {"num_warmup": 50, "num_samples": 50, "num_chains": 2}
    model = bs.ScalingModel("chinchilla", noise="lognormal")
    monkeypatch.setattr(sampler, "_PROGRAMS", {})
    kept = model.fit(chinchilla_runs, **settings)
    releases = []
    monkeypatch.setattr(sampler, "release_free_memory", lambda: releases.append(1))
    monkeypatch.setattr(sampler, "RELEASE_MEMORY_MIN_RUNS", 1)
    monkeypatch.setattr(sampler, "_PROGRAMS", {})
    released = model.fit(chinchilla_runs, **settings)
    # Every chain checks in every other iteration (100 iterations, 50 check-ins) and at the end.
    assert len(releases) == 2 * 51
    for name in kept.idata.posterior.data_vars:
        np.testing.assert_array_equal(
            released.idata.posterior[name].values, kept.idata.posterior[name].values
        )


def test_same_seed_same_draws(chinchilla_post, chinchilla_runs):
    sampler = chinchilla_post.meta["sampler"]
    settings = {k: sampler[k] for k in ("seed", "num_warmup", "num_samples", "num_chains")}
    again = bs.ScalingModel("chinchilla").fit(chinchilla_runs, **settings)
    for name in chinchilla_post.idata.posterior.data_vars:
        assert np.array_equal(
            again.idata.posterior[name].values, chinchilla_post.idata.posterior[name].values
        ), name


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")  # runs too short to mix
def test_a_second_fit_of_one_shape_reuses_the_compiled_sampler(chinchilla_runs):
    settings = {"num_warmup": 50, "num_samples": 50, "num_chains": 2}
    model = bs.ScalingModel("chinchilla", noise="lognormal")
    first = model.fit(chinchilla_runs.iloc[:120], seed=0, **settings)
    programs = dict(sampler._PROGRAMS)
    # Other data of the same shape: other prior locations, same program.
    second = model.fit(chinchilla_runs.iloc[120:240], seed=0, **settings)
    assert sampler._PROGRAMS == programs
    assert first.spec.priors != second.spec.priors
    # A new structure builds a new program.
    bs.ScalingModel("chinchilla", noise="student_t").fit(chinchilla_runs.iloc[:120], **settings)
    assert len(sampler._PROGRAMS) == len(programs) + 1


def _nan_away_from_median(params, x):
    at_median = jnp.abs(jnp.log(params["alpha"]) - math.log(0.3)) < 1e-6
    return jnp.where(at_median, params["A"] * jnp.exp(-params["alpha"] * x["x"]), jnp.nan)


def test_a_law_without_a_finite_start_is_an_error_not_a_hang():
    law = bs.Law(
        name="test_nan_away_from_median",
        inputs=("x",),
        params={
            "A": bs.Param("positive", bs.Prior(0.0, 1.0), response_units=True),
            "alpha": bs.Param("positive", bs.Prior(math.log(0.3), 1.0)),
        },
        predict=_nan_away_from_median,
    )
    bs.register_law(law)
    try:
        frame = pd.DataFrame({"flops": np.logspace(15, 19, 12), "loss": np.linspace(4, 3, 12)})
        expected = r"no starting point with a finite log density in 100 tries \(2 of 2 chains\)"
        with pytest.raises(bs.SamplingError, match=expected):
            bs.ScalingModel(law.name).fit(frame, num_warmup=10, num_samples=10, num_chains=2)
    finally:
        bs.LAWS.pop(law.name, None)


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")
def test_progress_bar_reaches_the_last_iteration(chinchilla_runs, capsys):
    bs.ScalingModel("chinchilla", noise="lognormal").fit(
        chinchilla_runs, num_warmup=30, num_samples=30, num_chains=2, progress_bar=True
    )
    err = capsys.readouterr().err
    assert "sampling" in err and "60/60" in err


def test_sample_stats_carry_each_chains_adapted_step_size(chinchilla_post):
    step_size = chinchilla_post.idata.sample_stats["step_size"].values
    assert step_size.shape == chinchilla_post.idata.sample_stats["n_steps"].shape
    assert np.all(np.isfinite(step_size)) and np.all(step_size > 0)
    # Constant within a chain (sampling keeps warmup's last), adapted per chain.
    np.testing.assert_array_equal(step_size, np.broadcast_to(step_size[:, :1], step_size.shape))
    assert len(np.unique(step_size[:, 0])) == step_size.shape[0]


def test_progress_bar_follows_the_slowest_chain():
    with sampler._Progress(total=10, chains=2, enabled=True) as progress:
        progress.check_in(chain=0, iterations=8)
        assert progress.bar.n == 0  # chain 1 has not reported yet
        progress.check_in(chain=1, iterations=3)
        assert progress.bar.n == 3
        progress.check_in(chain=1, iterations=10)
        assert progress.bar.n == 8


def test_importing_bayescale_gives_xla_a_cpu_device_per_chain(monkeypatch):
    from jax._src import xla_bridge

    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    use_cpu_cores_for_chains()
    flags = os.environ["XLA_FLAGS"].split()
    assert flags[0] == "--xla_cpu_enable_fast_math=false"
    count = int(flags[1].removeprefix(f"{HOST_DEVICES_FLAG}="))
    assert count >= bs.ScalingModel.default_sampler_config["num_chains"]
    # A count the user chose is kept, and so is everything once JAX has started.
    monkeypatch.setenv("XLA_FLAGS", f"{HOST_DEVICES_FLAG}=2")
    use_cpu_cores_for_chains()
    assert os.environ["XLA_FLAGS"] == f"{HOST_DEVICES_FLAG}=2"
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", "")
    use_cpu_cores_for_chains()
    assert os.environ["XLA_FLAGS"] == ""


def test_parallel_chains_compile_without_ynn_fusions(chinchilla_post):
    # jaxlib >= 0.10.2 otherwise compiles parts of the sampler into YNNPACK fusions; older ones
    # have none to turn off, so the check could not fail there.
    if sampler._jaxlib_version() < (0, 10, 2):
        pytest.skip("this jaxlib has no YNNPACK fusions")
    assert chinchilla_post.meta["sampler"]["chain_method"] == "parallel"
    programs = [p.compiled for p in sampler._PROGRAMS.values() if hasattr(p, "compiled")]
    texts = [program.as_text() for compiled in programs for program in compiled.values()]
    assert texts and all("__ynn_fusion" not in text for text in texts)


def test_only_small_cpu_programs_compile_with_the_older_fusion_emitters():
    small = sampler.parallel_compiler_options("cpu", sampler.LEGACY_EMITTERS_MAX_RUN_ITERATIONS)
    large = sampler.parallel_compiler_options("cpu", sampler.LEGACY_EMITTERS_MAX_RUN_ITERATIONS + 1)
    assert small["xla_cpu_use_fusion_emitters"] is False
    assert "xla_cpu_use_fusion_emitters" not in large
    assert sampler.parallel_compiler_options("gpu", 1) == {}


def test_parallel_chains_choose_their_options_by_runs_times_iterations(
    chinchilla_runs, monkeypatch
):
    asked = []

    def spy(backend, run_iterations):
        asked.append(run_iterations)
        return {}

    monkeypatch.setattr(sampler, "parallel_compiler_options", spy)
    runs = chinchilla_runs.iloc[:37]  # a shape no other test compiles
    settings = {"num_warmup": 30, "num_samples": 20, "num_chains": 2, "progress_bar": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)  # 50 iterations are too few
        post = bs.ScalingModel("chinchilla", noise="lognormal").fit(runs, **settings)
    assert post.meta["sampler"]["chain_method"] == "parallel"
    assert asked == [37 * 50]


def test_compiling_leaves_out_options_this_jaxlib_does_not_know():
    lowered = jax.jit(lambda x: 2 * x).lower(jnp.ones(3))
    compiled = sampler.compile_with(lowered, {"xla_cpu_no_such_option_here": True})
    np.testing.assert_array_equal(compiled(jnp.ones(3)), 2 * np.ones(3))
    # Other errors are not swallowed: a known option with a value it cannot take.
    with pytest.raises(jax.errors.JaxRuntimeError, match="xla_backend_optimization_level"):
        sampler.compile_with(lowered, {"xla_backend_optimization_level": "high"})


@pytest.mark.parametrize("dense", [True, False])
def test_both_mass_matrix_kinds_sample_the_chinchilla_posterior(
    chinchilla_post, chinchilla_runs, dense
):
    settings = {"num_warmup": 500, "num_samples": 1000, "num_chains": 2}
    post = bs.ScalingModel("chinchilla").fit(chinchilla_runs, seed=3, dense_mass=dense, **settings)
    assert post.diagnostics.ok, post.diagnostics.problems
    assert post.diagnostics.num_divergent == 0
    reference = chinchilla_post.idata.posterior
    for name in ("alpha", "beta", "E"):
        mean, sd = reference[name].values.mean(), reference[name].values.std()
        # Within 0.4 posterior sds: several times the Monte Carlo error of either mean.
        assert abs(post.idata.posterior[name].values.mean() - mean) < 0.4 * sd


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")  # runs too short to mix
def test_warmup_is_checked_and_recorded(chinchilla_runs):
    model = bs.ScalingModel("chinchilla", noise="lognormal")
    with pytest.raises(bs.SpecError, match="unknown warmup 'fast'"):
        model.fit(chinchilla_runs, warmup="fast")
    settings = {"num_warmup": 200, "num_samples": 200, "num_chains": 2}
    (batched,) = bs.fit_many(model, [chinchilla_runs], **settings)
    assert batched.meta["sampler"]["warmup"] == "standard"  # lanes in lockstep: see fit_many
    single = model.fit(chinchilla_runs, warmup="standard", **settings)
    assert single.meta["sampler"]["warmup"] == "standard"
    assert model.fit(chinchilla_runs, **settings).meta["sampler"]["warmup"] == "laplace"
