"""ModelSpec: conventions, defaults, priors, and its JSON form."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from bayescale import DataError, ModelSpec, Prior, ScalingData, ScalingModel, SpecError


def _geomean(values) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(values, dtype=np.float64)))))


@pytest.fixture
def chinchilla_spec(runs):
    spec, _ = ScalingModel("chinchilla").specify(runs)
    return spec


@pytest.fixture
def grouped_spec(runs):
    spec, _ = ScalingModel("chinchilla", group="task").specify(runs)
    return spec


def _paper_draws(rng, num=200):
    return {
        "E": rng.uniform(1.5, 2.0, num),
        "A": rng.uniform(100, 600, num),
        "alpha": rng.uniform(0.2, 0.5, num),
        "B": rng.uniform(200, 3000, num),
        "beta": rng.uniform(0.2, 0.5, num),
        "sigma": rng.uniform(0.01, 0.1, num),
    }


# -- conventions ---------------------------------------------------------------------------------


def test_references_are_the_tables_geometric_means(chinchilla_spec, runs):
    assert chinchilla_spec.references["params"] == pytest.approx(_geomean(runs["params"]))
    assert chinchilla_spec.references["tokens"] == pytest.approx(_geomean(runs["tokens"]))
    assert chinchilla_spec.response_ref == pytest.approx(_geomean(runs["loss"]))


def test_to_paper_by_hand(chinchilla_spec):
    n_ref = chinchilla_spec.references["params"]
    d_ref = chinchilla_spec.references["tokens"]
    ref = {"E": 1.7, "A": 0.2, "alpha": 0.3, "B": 0.5, "beta": 0.25, "sigma": 0.05}
    paper = chinchilla_spec.to_paper(ref)
    assert paper["A"] == pytest.approx(0.2 * n_ref**0.3, rel=1e-12)
    assert paper["B"] == pytest.approx(0.5 * d_ref**0.25, rel=1e-12)
    for name in ("E", "alpha", "beta", "sigma"):  # only amplitudes change
        assert paper[name] == ref[name]
    assert all(v.dtype == np.float64 for v in paper.values())


def test_to_paper_then_to_reference_round_trips(chinchilla_spec, rng):
    paper = _paper_draws(rng)
    back = chinchilla_spec.to_paper(chinchilla_spec.to_reference(paper))
    for name, values in paper.items():
        np.testing.assert_allclose(back[name], values, rtol=1e-12)
    ref = chinchilla_spec.to_reference(paper)
    assert not np.allclose(ref["A"], paper["A"])  # the conversion did something


def test_reference_law_equals_paper_formula(chinchilla_spec, rng):
    """The law on log(scale / reference) with reference amplitudes is the papers' formula."""
    paper = _paper_draws(rng, num=50)
    ref = chinchilla_spec.to_reference(paper)
    n = np.array([1e7, 4e8, 7e10, 1e12])
    d = np.array([1e9, 8e9, 1.4e12, 2e13])
    x = {
        "params": jnp.asarray(np.log(n / chinchilla_spec.references["params"])),
        "tokens": jnp.asarray(np.log(d / chinchilla_spec.references["tokens"])),
    }
    law_params = {k: jnp.asarray(ref[k][:, None]) for k in chinchilla_spec.law_obj.params}
    law = np.asarray(chinchilla_spec.law_obj.predict(law_params, x), dtype=np.float64)
    p = {k: v[:, None] for k, v in paper.items()}
    direct = p["E"] + p["A"] * n ** -p["alpha"] + p["B"] * d ** -p["beta"]
    np.testing.assert_allclose(law, direct, rtol=1e-5)


def test_per_group_amplitude_with_shared_exponent(grouped_spec, rng):
    n_ref = grouped_spec.references["params"]
    amplitude = rng.uniform(0.1, 1.0, size=(30, 2))  # (draws, groups)
    alpha = rng.uniform(0.2, 0.5, size=30)  # shared: (draws,)
    paper = grouped_spec.to_paper({"A": amplitude, "alpha": alpha})
    assert paper["A"].shape == (30, 2)
    np.testing.assert_allclose(paper["A"], amplitude * n_ref ** alpha[:, None], rtol=1e-12)
    back = grouped_spec.to_reference(paper)
    np.testing.assert_allclose(back["A"], amplitude, rtol=1e-12)
    np.testing.assert_array_equal(back["alpha"], alpha)


def test_shared_amplitude_with_per_group_exponent(grouped_spec, rng):
    d_ref = grouped_spec.references["tokens"]
    amplitude = rng.uniform(0.1, 1.0, size=30)
    beta = rng.uniform(0.2, 0.5, size=(30, 2))
    paper = grouped_spec.to_paper({"B": amplitude, "beta": beta})
    assert paper["B"].shape == (30, 2)
    np.testing.assert_allclose(paper["B"], amplitude[:, None] * d_ref**beta, rtol=1e-12)


def test_conversion_keeps_a_chain_draw_layout(grouped_spec, rng):
    amplitude = rng.uniform(0.1, 1.0, size=(2, 25, 2))  # (chain, draw, group)
    alpha = rng.uniform(0.2, 0.5, size=(2, 25))
    paper = grouped_spec.to_paper({"A": amplitude, "alpha": alpha})
    n_ref = grouped_spec.references["params"]
    np.testing.assert_allclose(paper["A"], amplitude * n_ref ** alpha[..., None], rtol=1e-12)


# -- defaults ------------------------------------------------------------------------------------


def test_default_pooling_with_group(grouped_spec):
    assert grouped_spec.group == "task"
    assert grouped_spec.labels == ("arc", "hellaswag")
    assert grouped_spec.pooling == {
        "E": "partial",
        "A": "partial",
        "alpha": "shared",
        "B": "partial",
        "beta": "shared",
        "sigma": "shared",
        "nu": "shared",
    }
    assert [n for n in grouped_spec.params if grouped_spec.per_group(n)] == ["E", "A", "B"]


def test_nothing_is_per_group_without_a_group(chinchilla_spec):
    assert chinchilla_spec.group is None
    assert chinchilla_spec.labels == ()
    assert not any(chinchilla_spec.per_group(n) for n in chinchilla_spec.params)


def test_pooling_override_is_per_parameter(runs):
    spec, _ = ScalingModel("chinchilla", group="task", pooling={"alpha": "partial"}).specify(runs)
    assert spec.pooling["alpha"] == "partial"
    assert spec.pooling["beta"] == "shared"
    assert spec.pooling["E"] == "partial"


def test_noise_parameters_follow_the_noise(runs):
    t_spec, _ = ScalingModel("power", x="flops").specify(runs)
    ln_spec, _ = ScalingModel("power", x="flops", noise="lognormal").specify(runs)
    assert list(t_spec.params) == ["E", "A", "alpha", "sigma", "nu"]
    assert list(ln_spec.params) == ["E", "A", "alpha", "sigma"]


def test_default_priors_in_response_units_are_shifted(runs):
    spec, _ = ScalingModel("chinchilla").specify(runs)
    log_ref = math.log(_geomean(runs["loss"]))
    assert spec.priors["E"].loc == pytest.approx(math.log(0.5) + log_ref, rel=1e-12)
    assert spec.priors["A"].loc == pytest.approx(math.log(0.25) + log_ref, rel=1e-12)
    assert spec.priors["B"].loc == pytest.approx(math.log(0.25) + log_ref, rel=1e-12)
    # Exponents and noise are not in response units.
    assert spec.priors["alpha"] == Prior(math.log(0.3), 1.0)
    assert spec.priors["sigma"] == Prior(math.log(0.05), 1.5)
    assert spec.priors["nu"] == Prior(math.log(9.0), 1.0)  # on log(nu - 1)
    # Scaling the losses by 10 moves the response-unit priors by log(10), nothing else.
    spec10, _ = ScalingModel("chinchilla").specify(runs.assign(loss=runs["loss"] * 10))
    assert spec10.priors["E"].loc - spec.priors["E"].loc == pytest.approx(math.log(10.0))
    assert spec10.priors["E"].scale == spec.priors["E"].scale
    assert spec10.priors["alpha"] == spec.priors["alpha"]


@pytest.mark.parametrize("given", [Prior(0.1, 0.2), (0.1, 0.2), {"loc": 0.1, "scale": 0.2}])
def test_user_priors_are_absolute(runs, given):
    spec, _ = ScalingModel("chinchilla", priors={"E": given}).specify(runs)
    assert spec.priors["E"] == Prior(0.1, 0.2)  # not shifted by log(response_ref)


def test_constrain_zero_latents_gives_prior_medians(grouped_spec):
    # Zero latents sit at the prior median, whatever coordinate a parameter is sampled in.
    latent = {}
    for name, param in grouped_spec.params.items():
        log_coordinate = param.coordinate == "log"
        if grouped_spec.pooling[name] == "partial":
            latent[f"{name}_mu_z" if log_coordinate else f"{name}_mu_v"] = jnp.zeros(())
            latent[f"{name}_tau"] = jnp.asarray(0.3)
            latent[f"{name}_z" if log_coordinate else f"{name}_w"] = jnp.zeros(2)
        elif grouped_spec.per_group(name):
            latent[f"{name}_z" if log_coordinate else f"{name}_v"] = jnp.zeros(2)
        else:
            latent[f"{name}_z" if log_coordinate else f"{name}_v"] = jnp.zeros(())
    values = grouped_spec.constrain(latent)
    for name, value in values.items():
        expected = grouped_spec.params[name].lower + math.exp(grouped_spec.priors[name].loc)
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        assert np.shape(value) == ((2,) if grouped_spec.per_group(name) else ())


# -- JSON form -----------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip(grouped_spec):
    values = grouped_spec.to_dict()
    text = json.dumps(values)  # JSON-friendly
    back = ModelSpec.from_dict(json.loads(text))
    assert back == grouped_spec
    assert back.priors["E"] == grouped_spec.priors["E"]
    assert isinstance(back.labels, tuple)
    assert back.digest() == grouped_spec.digest()


def test_digest_is_stable_and_sensitive(runs, grouped_spec):
    again, _ = ScalingModel("chinchilla", group="task").specify(runs)
    assert again is not grouped_spec
    assert again.digest() == grouped_spec.digest()
    assert len(grouped_spec.digest()) == 64
    int(grouped_spec.digest(), 16)
    # Key order in the JSON does not matter.
    values = grouped_spec.to_dict()
    shuffled = {k: values[k] for k in reversed(list(values))}
    shuffled["priors"] = {k: values["priors"][k] for k in reversed(list(values["priors"]))}
    assert ModelSpec.from_dict(shuffled).digest() == grouped_spec.digest()
    # Any change to the model changes it.
    changed = dict(values, priors={**values["priors"], "E": [0.0, 1.0]})
    assert ModelSpec.from_dict(changed).digest() != grouped_spec.digest()
    other, _ = ScalingModel("chinchilla", group="task", noise="lognormal").specify(runs)
    assert other.digest() != grouped_spec.digest()


# -- a validated ScalingData must agree with the model's group -----------------------------------


def test_specify_rejects_scaling_data_without_the_models_group(runs):
    data = ScalingData.from_frame(runs, scales=["flops"])  # validated without a group
    with pytest.raises((SpecError, DataError), match="task"):
        ScalingModel("power", x="flops", group="task").specify(data)


def test_specify_with_grouped_scaling_data_and_ungrouped_model_is_consistent(runs):
    data = ScalingData.from_frame(runs, scales=["flops"], group="task")
    try:
        spec, _ = ScalingModel("power", x="flops").specify(data)
    except (SpecError, DataError):
        return
    assert spec.group is None
    assert spec.labels == ()


def test_specify_accepts_matching_scaling_data(runs):
    data = ScalingData.from_frame(runs, scales=["flops"], group="task")
    spec, same = ScalingModel("power", x="flops", group="task").specify(data)
    assert same is data
    assert spec.labels == ("arc", "hellaswag")
    direct, _ = ScalingModel("power", x="flops", group="task").specify(runs)
    assert spec == direct
