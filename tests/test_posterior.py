"""Posterior: summary, diagnostics, and save/load that refuses anything it did not write."""

from __future__ import annotations

import json

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import Diagnostics, LoadError, SamplingError, SamplingWarning, ScalingModel
from bayescale.posterior import from_values

SUMMARY_COLUMNS = {"mean", "sd", "lower", "upper", "r_hat", "ess_bulk", "ess_tail"}


# -- the shared fits are clean -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chinchilla_post", "grouped_post"])
def test_fixture_fits_pass_their_diagnostics(request, name):
    post = request.getfixturevalue(name)
    assert post.diagnostics.ok, post.diagnostics.describe()
    assert post.diagnostics.problems == []
    sampler = post.meta["sampler"]
    assert post.diagnostics.num_draws == sampler["num_chains"] * sampler["num_samples"]
    assert "All sampling checks pass" in post.diagnostics.describe()
    assert "diagnostics ok" in repr(post)


# -- summary -------------------------------------------------------------------------------------


def test_summary_columns_and_rows(chinchilla_post):
    summary = chinchilla_post.summary()
    assert SUMMARY_COLUMNS <= set(summary.columns)
    assert set(summary.index) == {"E", "A", "alpha", "B", "beta", "sigma", "nu"}


def test_grouped_summary_has_a_row_per_group(grouped_post):
    summary = grouped_post.summary()
    assert SUMMARY_COLUMNS <= set(summary.columns)
    assert {"E[c4]", "E[redpajama]", "E[refinedweb]", "A", "alpha"} <= set(summary.index)
    assert "E" not in summary.index  # per-group, so only the labelled rows
    assert "alpha[c4]" not in summary.index  # shared


def test_summary_matches_the_draws(grouped_post):
    summary = grouped_post.summary(ci_prob=0.8)
    posterior = grouped_post.idata.posterior
    for row, values in (
        ("alpha", posterior["alpha"].values),
        ("E[redpajama]", posterior["E"].sel(dataset="redpajama").values),
        ("A", posterior["A"].values),
    ):
        values = values.ravel()
        assert summary.loc[row, "mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert summary.loc[row, "lower"] == pytest.approx(np.quantile(values, 0.1), rel=1e-9)
        assert summary.loc[row, "upper"] == pytest.approx(np.quantile(values, 0.9), rel=1e-9)
    # Groups differ: E[c4] is not just a copy of another group.
    assert summary.loc["E[c4]", "mean"] != summary.loc["E[refinedweb]", "mean"]


def test_summary_is_in_the_papers_convention(chinchilla_post):
    # A published Chinchilla A is in the hundreds; the reference-convention A is below the loss.
    summary = chinchilla_post.summary()
    assert summary.loc["A", "mean"] > 50
    assert summary.loc["B", "mean"] > 50
    draws = chinchilla_post.draws()
    n_ref = chinchilla_post.spec.references["params"]
    paper_a = chinchilla_post.idata.posterior["A"].values.ravel()
    np.testing.assert_allclose(draws["A"] * n_ref ** draws["alpha"], paper_a, rtol=1e-10)
    assert np.all(draws["A"] < 5)


def test_intervals_are_ordered_and_ci_prob_sets_the_width(grouped_post):
    wide = grouped_post.summary(ci_prob=0.95)
    narrow = grouped_post.summary(ci_prob=0.5)
    assert (wide["lower"] < wide["upper"]).all()
    assert (narrow["lower"] < narrow["upper"]).all()
    assert ((wide["upper"] - wide["lower"]) > (narrow["upper"] - narrow["lower"])).all()
    assert (wide["lower"] <= wide["median"]).all() and (wide["median"] <= wide["upper"]).all()
    pd.testing.assert_series_equal(wide["mean"], narrow["mean"])


@pytest.mark.parametrize("ci_prob", [0.0, 1.0, 1.5, -0.1])
def test_summary_rejects_bad_ci_prob(chinchilla_post, ci_prob):
    with pytest.raises(ValueError, match="ci_prob"):
        chinchilla_post.summary(ci_prob=ci_prob)


# -- save and load -------------------------------------------------------------------------------

GROUPED_AT = pd.DataFrame(
    {"flops": [1e20, 3e21, 1e23], "dataset": ["refinedweb", "c4", "c4"]},
    index=pd.Index(["x", "y", "z"], name="point"),
)


@pytest.fixture(scope="module")
def saved(grouped_post, tmp_path_factory):
    path = tmp_path_factory.mktemp("fits") / "grouped.nc"
    written = grouped_post.save(path)
    return written, bs.load(path)


def test_save_writes_one_file_and_no_temporaries(saved):
    path, _ = saved
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_round_trip_gives_identical_draws(grouped_post, saved):
    _, loaded = saved
    original = grouped_post.idata.posterior
    assert set(loaded.idata.posterior.data_vars) == set(original.data_vars)
    for name in original.data_vars:
        assert np.array_equal(loaded.idata.posterior[name].values, original[name].values), name
    assert list(loaded.idata.posterior["dataset"].values) == ["c4", "redpajama", "refinedweb"]
    for name, values in grouped_post.draws().items():
        assert np.array_equal(loaded.draws()[name], values), name


def test_round_trip_gives_identical_spec_and_meta(grouped_post, saved):
    _, loaded = saved
    assert loaded.spec == grouped_post.spec
    assert loaded.spec.digest() == grouped_post.spec.digest()
    assert loaded.meta["sampler"] == json.loads(json.dumps(grouped_post.meta["sampler"]))
    assert loaded.meta["sampler"]["seed"] == 4
    pd.testing.assert_frame_equal(loaded.diagnostics.table, grouped_post.diagnostics.table)
    pd.testing.assert_frame_equal(loaded.summary(), grouped_post.summary())


def test_round_trip_gives_identical_answers(grouped_post, saved):
    _, loaded = saved
    for kind in ("predictive", "mean"):
        pd.testing.assert_frame_equal(
            bs.forecast(loaded, GROUPED_AT, kind=kind),
            bs.forecast(grouped_post, GROUPED_AT, kind=kind),
        )
        np.testing.assert_array_equal(
            bs.prob_reached(loaded, 2.6, GROUPED_AT, kind=kind),
            bs.prob_reached(grouped_post, 2.6, GROUPED_AT, kind=kind),
        )


def test_round_trip_keeps_the_data(gadre_c4_runs, saved):
    _, loaded = saved
    data = loaded.data
    assert data.num_runs == len(gadre_c4_runs)
    np.testing.assert_array_equal(data.y, gadre_c4_runs["loss"].to_numpy())
    np.testing.assert_array_equal(data.scales["flops"], gadre_c4_runs["flops"].to_numpy())
    labels = np.array(data.labels)[data.codes]
    np.testing.assert_array_equal(labels, gadre_c4_runs["dataset"].to_numpy())
    assert list(data.rows) == [str(i) for i in gadre_c4_runs.index]


def test_save_overwrites(grouped_post, saved, tmp_path):
    path = tmp_path / "fit.nc"
    path.write_bytes(b"old contents")
    grouped_post.save(path)
    assert bs.load(path).spec == grouped_post.spec


def test_load_missing_file(tmp_path):
    with pytest.raises(LoadError, match="does not exist"):
        bs.load(tmp_path / "nothing.nc")


def test_load_directory(tmp_path):
    with pytest.raises(LoadError):
        bs.load(tmp_path)


def test_load_random_bytes(tmp_path, rng):
    path = tmp_path / "noise.nc"
    path.write_bytes(rng.bytes(4096))
    with pytest.raises(LoadError, match="not a readable"):
        bs.load(path)


def test_load_truncated_file(saved, tmp_path):
    source, _ = saved
    content = source.read_bytes()
    path = tmp_path / "truncated.nc"
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(LoadError):
        bs.load(path)


def test_load_netcdf_without_bayescale_metadata(tmp_path, rng):
    path = tmp_path / "foreign.nc"
    az.from_dict(posterior={"alpha": rng.normal(size=(2, 50))}).to_netcdf(path)
    with pytest.raises(LoadError, match="no bayescale metadata"):
        bs.load(path)


def _rewrite_meta(source, target, edit):
    idata = az.from_netcdf(source)
    meta = json.loads(idata.posterior.attrs["bayescale"])
    edit(meta)
    idata.posterior.attrs["bayescale"] = json.dumps(meta, sort_keys=True)
    idata.to_netcdf(target)
    return target


def test_rewritten_but_unchanged_metadata_still_loads(saved, tmp_path):
    source, loaded = saved
    path = _rewrite_meta(source, tmp_path / "same.nc", lambda meta: None)
    assert bs.load(path).spec == loaded.spec


def test_load_detects_an_edited_spec(saved, tmp_path):
    source, _ = saved

    def edit(meta):
        meta["spec"]["priors"]["alpha"] = [0.0, 0.1]  # the checksum is left as it was

    path = _rewrite_meta(source, tmp_path / "edited.nc", edit)
    with pytest.raises(LoadError, match="checksum"):
        bs.load(path)


def test_load_refuses_a_newer_schema(saved, tmp_path):
    source, _ = saved
    path = _rewrite_meta(source, tmp_path / "future.nc", lambda m: m.update(schema_version=99))
    with pytest.raises(LoadError, match="schema"):
        bs.load(path)


def test_load_refuses_damaged_metadata(saved, tmp_path):
    source, _ = saved
    idata = az.from_netcdf(source)
    idata.posterior.attrs["bayescale"] = "{not json"
    path = tmp_path / "damaged.nc"
    idata.to_netcdf(path)
    with pytest.raises(LoadError, match="damaged"):
        bs.load(path)


# -- diagnostics of a bad fit --------------------------------------------------------------------

BAD_FIT = {"num_warmup": 5, "num_samples": 20, "num_chains": 2}


def test_bad_fit_warns_by_default_at_the_callers_line(chinchilla_runs):
    with pytest.warns(SamplingWarning, match="sampling diagnostics failed") as record:
        post = ScalingModel("chinchilla").fit(chinchilla_runs, seed=0, **BAD_FIT)
    assert post.diagnostics.problems
    assert not post.diagnostics.ok
    assert any("ESS" in p for p in post.diagnostics.problems)
    assert "FAILED" in repr(post)
    assert "WARNING" in post.diagnostics.describe()
    # The warning points at this file, not into bayescale.
    assert [w.filename for w in record] == [__file__]


def test_bad_fit_with_strict_raises(chinchilla_runs):
    with pytest.raises(SamplingError, match="ESS"):
        bs.fit(ScalingModel("chinchilla"), chinchilla_runs, seed=0, strict=True, **BAD_FIT)


def test_unknown_sampler_option(chinchilla_runs):
    with pytest.raises(bs.SpecError, match="num_draws"):
        bs.fit(ScalingModel("chinchilla"), chinchilla_runs, num_draws=10)


def _fake_idata(rng, *, chains=4, draws=1000, shift=0.0, divergent=0, deep=0):
    b = rng.normal(size=(chains, draws))
    b[0] += shift
    diverging = np.zeros((chains, draws), dtype=bool)
    diverging.flat[:divergent] = True
    depth = np.full((chains, draws), 4)
    depth.flat[-deep or depth.size :] = 10 if deep else 4
    return az.from_dict(
        posterior={"a": rng.normal(size=(chains, draws)), "b": b},
        sample_stats={"diverging": diverging, "tree_depth": depth},
    )


def test_divergences_name_parameters_whose_groups_barely_differ(rng):
    idata = _fake_idata(rng, divergent=3)
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    idata.posterior["A_tau"] = (("chain", "draw"), rng.uniform(0.0, 0.04, (chains, draws)))
    idata.posterior["E_tau"] = (("chain", "draw"), rng.uniform(0.1, 0.5, (chains, draws)))
    sampler = {"target_accept_prob": 0.95}
    diag = Diagnostics.from_idata(idata, max_tree_depth=10, sampler=sampler)
    (message,) = [p for p in diag.problems if "divergent" in p]
    assert "barely differ in ['A']" in message and "pooling={'A': 'shared'}" in message
    idata.posterior["A_tau"] = idata.posterior["E_tau"]  # spreads well away from 0: no such hint
    diag = Diagnostics.from_idata(idata, max_tree_depth=10, sampler=sampler)
    assert not any("barely differ" in p for p in diag.problems)


def test_diagnostics_of_clean_draws(rng):
    diag = Diagnostics.from_idata(_fake_idata(rng), max_tree_depth=10)
    assert diag.ok and diag.problems == []
    assert diag.num_draws == 4000
    assert diag.num_divergent == 0 and diag.num_max_tree_depth == 0


def test_diagnostics_flag_chains_that_disagree(rng):
    diag = Diagnostics.from_idata(_fake_idata(rng, shift=3.0), max_tree_depth=10)
    assert "R-hat" in diag.problems[0] and "'b'" in diag.problems[0]
    assert not any("'a'" in p for p in diag.problems)  # the well-mixed parameter is not blamed


def test_diagnostics_count_divergences_and_tree_depth(rng):
    diag = Diagnostics.from_idata(_fake_idata(rng, divergent=3, deep=2), max_tree_depth=10)
    assert diag.num_divergent == 3
    assert diag.num_max_tree_depth == 2
    assert any("3 divergent" in p for p in diag.problems)
    assert any("2 transitions hit the maximum tree depth" in p for p in diag.problems)


def test_diagnostics_flag_too_few_effective_draws(rng):
    idata = _fake_idata(rng, draws=60)
    diag = Diagnostics.from_idata(idata, max_tree_depth=10)
    assert any("ESS" in p and "400" in p for p in diag.problems)  # 100 per chain, 4 chains


def test_diagnostics_flag_an_undefined_r_hat(rng):
    # One chain: R-hat cannot be computed, which must not read as a pass.
    diag = Diagnostics.from_idata(_fake_idata(rng, chains=1), max_tree_depth=10)
    assert not diag.ok
    assert any("R-hat" in p for p in diag.problems)


def test_diagnostics_flag_a_chain_that_never_moved(rng):
    idata = _fake_idata(rng)
    idata.posterior["b"][:] = 1.5  # every chain stuck at one value: no variance at all
    diag = Diagnostics.from_idata(idata, max_tree_depth=10)  # no numpy warning raised
    assert not diag.ok
    assert any("never moved" in p and "'b'" in p for p in diag.problems)


# -- population parameters of a partially pooled fit (built from fake latents) ----------------


def test_population_amplitude_is_in_the_papers_convention(gadre_c4_runs, rng):
    """With every group at the population centre, in whichever convention, ``A[g]`` equals
    ``A_mu`` once both are converted."""
    spec, data = ScalingModel("power", x="flops", group="dataset").specify(gadre_c4_runs)
    assert spec.pooling["A"] == "partial" and spec.pooling["alpha"] == "shared"
    chains, draws, groups = 2, 50, len(spec.labels)
    # Latents kept near the prior centre: 0.3 sd of a log-coordinate latent, 5% of the prior
    # median for a linear or reciprocal one (whose latent is a relative change).
    latent = {}
    for name, param in spec.params.items():
        suffix, sd = ("z", 0.3) if param.coordinate == "log" else ("v", 0.05)
        if spec.per_group(name):
            latent[f"{name}_mu_{suffix}"] = rng.normal(0, sd, size=(chains, draws))
            latent[f"{name}_tau"] = rng.uniform(0.1, 0.2, size=(chains, draws))
            if param.coordinate == "log":  # non-centred: value = centre * exp(tau * z)
                latent[f"{name}_z"] = np.zeros((chains, draws, groups))
            else:  # centred: the group coordinates themselves
                latent[f"{name}_w"] = np.repeat(latent[f"{name}_mu_v"][..., None], groups, -1)
        else:
            latent[f"{name}_{suffix}"] = rng.normal(0, sd, size=(chains, draws))
    as_sampled = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in latent.items()}
    post = from_values(
        spec,
        data,
        values=jax.vmap(jax.vmap(spec.parameter_values))(as_sampled),
        stats={
            "diverging": np.zeros((chains, draws), dtype=bool),
            "num_steps": np.full((chains, draws), 7),
            "step_size": np.full(chains, 0.3),
        },
        log_likelihood=np.zeros((chains, draws, data.num_runs)),
        sampler={"max_tree_depth": 10, "seed": 0},
    )
    posterior = post.idata.posterior
    for name in ("A", "E"):
        assert posterior[name].dims == ("chain", "draw", "dataset")
        for label in spec.labels:
            np.testing.assert_allclose(
                posterior[name].sel(dataset=label).values, posterior[f"{name}_mu"].values, rtol=1e-5
            )
    # And the conversion is not the identity: paper A is A_ref * reference ** alpha.
    # A is sampled on the linear scale: its centre is the prior median times (1 + latent).
    a_ref = np.exp(spec.priors["A"].loc) * (1 + latent["A_mu_v"])
    expected = a_ref * spec.references["flops"] ** posterior["alpha"].values
    np.testing.assert_allclose(posterior["A_mu"].values, expected, rtol=1e-5)
