"""Built-in laws at hand-computed points, under jit and vmap, and user laws end to end."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import Law, LoadError, Param, Prior, SpecError
from bayescale.laws import CHINCHILLA, POWER

# float32 under JAX's default precision
RTOL = 1e-6


def _power_numpy(p, x):
    return p["E"] + p["A"] * np.exp(-p["alpha"] * x)


def _chinchilla_numpy(p, xn, xd):
    return p["E"] + p["A"] * np.exp(-p["alpha"] * xn) + p["B"] * np.exp(-p["beta"] * xd)


# -- values at hand-computed points ------------------------------------------------------------


def test_power_at_hand_computed_points():
    # E = 2, A = 1, alpha = log 2: L(x) = 2 + 2**-x.
    params = {"E": 2.0, "A": 1.0, "alpha": math.log(2.0)}
    x = jnp.array([-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(POWER.predict(params, {"x": x}), [4.0, 3.0, 2.5, 2.25], rtol=RTOL)


def test_chinchilla_at_hand_computed_points():
    # E = 1, A = 2, alpha = log 2, B = 3, beta = log 3: L = 1 + 2 * 2**-xN + 3 * 3**-xD.
    params = {"E": 1.0, "A": 2.0, "alpha": math.log(2.0), "B": 3.0, "beta": math.log(3.0)}
    xn = jnp.array([0.0, 1.0, 2.0, -1.0])
    xd = jnp.array([0.0, 1.0, -1.0, 2.0])
    expected = [6.0, 3.0, 1.0 + 0.5 + 9.0, 1.0 + 4.0 + 1.0 / 3.0]
    out = CHINCHILLA.predict(params, {"params": xn, "tokens": xd})
    np.testing.assert_allclose(out, expected, rtol=RTOL)


def test_power_matches_numpy_over_a_range(rng):
    x = rng.uniform(-6, 6, size=50)
    params = {"E": 1.7, "A": 0.35, "alpha": 0.42}
    out = POWER.predict(params, {"x": jnp.asarray(x)})
    np.testing.assert_allclose(out, _power_numpy(params, x), rtol=1e-5)


def test_chinchilla_matches_numpy_over_a_range(rng):
    xn, xd = rng.uniform(-5, 5, size=(2, 50))
    params = {"E": 1.8, "A": 0.2, "alpha": 0.34, "B": 0.3, "beta": 0.28}
    out = CHINCHILLA.predict(params, {"params": jnp.asarray(xn), "tokens": jnp.asarray(xd)})
    np.testing.assert_allclose(out, _chinchilla_numpy(params, xn, xd), rtol=1e-5)


def test_far_extrapolation_stays_finite():
    # Terms of very different size: the log-sum-exp form must neither overflow nor lose E.
    params = {"E": 1.5, "A": 0.3, "alpha": 0.5, "B": 0.3, "beta": 0.5}
    out = CHINCHILLA.predict(params, {"params": jnp.array(60.0), "tokens": jnp.array(60.0)})
    assert float(out) == pytest.approx(1.5, rel=RTOL)


# -- jit, vmap, broadcasting ---------------------------------------------------------------------

LAW_CASES = [
    (POWER, {"E": (1.5, 0.3), "A": (0.4, 0.1), "alpha": (0.3, 0.1)}),
    (
        CHINCHILLA,
        {
            "E": (1.8, 0.2),
            "A": (0.3, 0.1),
            "alpha": (0.34, 0.05),
            "B": (0.4, 0.1),
            "beta": (0.3, 0.05),
        },
    ),
]


def _draws(rng, spec, num):
    return {k: np.abs(rng.normal(m, s, size=num)).astype(np.float32) for k, (m, s) in spec.items()}


def _inputs(rng, law, num):
    return {
        name: jnp.asarray(rng.uniform(-4, 4, size=num), dtype=jnp.float32) for name in law.inputs
    }


@pytest.mark.parametrize(("law", "spec"), LAW_CASES, ids=lambda v: getattr(v, "name", ""))
def test_jit_equals_eager(rng, law, spec):
    params = {k: jnp.asarray(v) for k, v in _draws(rng, spec, 1).items()}
    params = {k: v[0] for k, v in params.items()}
    x = _inputs(rng, law, 30)
    np.testing.assert_allclose(jax.jit(law.predict)(params, x), law.predict(params, x), rtol=RTOL)


@pytest.mark.parametrize(("law", "spec"), LAW_CASES, ids=lambda v: getattr(v, "name", ""))
def test_vmap_over_draws_equals_loop(rng, law, spec):
    draws = _draws(rng, spec, 7)
    x = _inputs(rng, law, 11)
    vmapped = jax.vmap(law.predict, in_axes=(0, None))(
        {k: jnp.asarray(v) for k, v in draws.items()}, x
    )
    looped = np.stack([law.predict({k: v[i] for k, v in draws.items()}, x) for i in range(7)])
    assert vmapped.shape == (7, 11)
    np.testing.assert_allclose(vmapped, looped, rtol=RTOL)


@pytest.mark.parametrize(("law", "spec"), LAW_CASES, ids=lambda v: getattr(v, "name", ""))
def test_broadcasts_draws_against_rows(rng, law, spec):
    draws = _draws(rng, spec, 5)
    x = _inputs(rng, law, 9)
    out = law.predict({k: jnp.asarray(v)[:, None] for k, v in draws.items()}, x)
    looped = np.stack([law.predict({k: v[i] for k, v in draws.items()}, x) for i in range(5)])
    assert out.shape == (5, 9)
    np.testing.assert_allclose(out, looped, rtol=RTOL)


def test_chinchilla_broadcasts_with_mixed_shapes(rng):
    # A per-row offset (draws, rows) next to shared scalars, as in a grouped forecast.
    draws = _draws(rng, LAW_CASES[1][1], 4)
    params = {k: jnp.asarray(v)[:, None] for k, v in draws.items()}
    params["E"] = jnp.asarray(rng.uniform(1, 2, size=(4, 6)), dtype=jnp.float32)
    x = _inputs(rng, CHINCHILLA, 6)
    out = CHINCHILLA.predict(params, x)
    expected = _chinchilla_numpy(
        {k: np.asarray(v, dtype=np.float64) for k, v in params.items()},
        np.asarray(x["params"], dtype=np.float64),
        np.asarray(x["tokens"], dtype=np.float64),
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5)


# -- gradients and checks ------------------------------------------------------------------------


@pytest.mark.parametrize("law", [POWER, CHINCHILLA], ids=lambda law: law.name)
def test_gradients_finite_and_informative_at_prior_medians(law):
    law.check()  # raises SpecError if not finite
    medians = {name: jnp.exp(jnp.asarray(p.prior.loc)) for name, p in law.params.items()}
    x = {name: jnp.linspace(-3.0, 3.0, 7) for name in law.inputs}
    grads = jax.grad(lambda p: jnp.sum(law.predict(p, x)))(medians)
    for name, g in grads.items():
        assert np.isfinite(float(g)), name
        assert float(g) != 0.0, f"{name} does not move the law"


def _sqrt_law(name="test_sqrt_of_negative"):
    def predict(params, x):
        return jnp.sqrt(params["E"] - 1.0) + 0.0 * x["x"]  # prior median E = 0.5: NaN

    return Law(
        name=name,
        inputs=("x",),
        params={"E": Param("positive", Prior(math.log(0.5), 1.0))},
        predict=predict,
    )


def test_check_rejects_a_law_not_finite_at_its_prior_medians():
    with pytest.raises(SpecError, match="not finite"):
        _sqrt_law().check()
    with pytest.raises(SpecError):
        bs.register_law(_sqrt_law())
    assert "test_sqrt_of_negative" not in bs.LAWS


def test_law_definition_errors():
    amp = Param("positive", Prior(0.0, 1.0))
    with pytest.raises(SpecError, match="input"):
        Law(name="bad", inputs=(), params={"A": amp}, predict=lambda p, x: p["A"])
    with pytest.raises(SpecError, match="'k'"):
        Law(
            name="bad",
            inputs=("x",),
            params={"A": amp},
            predict=lambda p, x: p["A"],
            amplitudes={"A": ("k", "x")},
        )
    with pytest.raises(SpecError, match="'params'"):
        Law(
            name="bad",
            inputs=("x",),
            params={"A": amp, "k": amp},
            predict=lambda p, x: p["A"],
            amplitudes={"A": ("k", "params")},
        )
    with pytest.raises(SpecError, match="support"):
        Param("negative", Prior(0.0, 1.0))
    with pytest.raises(SpecError, match="pooling"):
        Param("positive", Prior(0.0, 1.0), pooling="full")
    with pytest.raises(SpecError):
        Prior.lognormal(0.0, 1.0)
    assert Prior.lognormal(2.0, 0.5) == Prior(math.log(2.0), 0.5)


# -- the registry and user laws ------------------------------------------------------------------


def test_get_law():
    assert bs.get_law("power") is POWER
    assert bs.get_law("chinchilla") is CHINCHILLA
    assert bs.get_law(POWER) is POWER
    with pytest.raises(SpecError, match="'no_such_law'.*chinchilla"):
        bs.get_law("no_such_law")


def _pure_power_predict(params, x):
    return params["A"] * jnp.exp(-params["alpha"] * x["x"])


def _pure_power(name="test_pure_power"):
    return Law(
        name=name,
        inputs=("x",),
        params={
            "A": Param("positive", Prior(0.0, 1.0), pooling="partial", response_units=True),
            "alpha": Param("positive", Prior(math.log(0.3), 1.0)),
        },
        predict=_pure_power_predict,
        amplitudes={"A": ("alpha", "x")},
        formula="L = A x^-alpha",
    )


@pytest.fixture
def user_law():
    law = _pure_power()
    registered = bs.register_law(law)
    yield registered
    bs.LAWS.pop(law.name, None)


def test_register_law(user_law):
    assert bs.get_law("test_pure_power") is user_law
    assert bs.register_law(user_law) is user_law  # the same object again is fine
    with pytest.raises(SpecError, match="already registered"):
        bs.register_law(_pure_power())
    replacement = _pure_power()
    bs.register_law(replacement, overwrite=True)
    assert bs.get_law("test_pure_power") is replacement


def test_builtin_names_are_protected():
    impostor = Law(name="power", inputs=POWER.inputs, params=POWER.params, predict=POWER.predict)
    with pytest.raises(SpecError, match="'power'"):
        bs.register_law(impostor)
    assert bs.get_law("power") is POWER


TRUE_A, TRUE_ALPHA = 40.0, 0.08


@pytest.fixture(scope="module")
def user_law_fit():
    """A tiny fit of a user law (L = A x^-alpha) to 16 simulated runs."""
    law = bs.register_law(_pure_power("test_pure_power_fit"))
    try:
        rng = np.random.default_rng(1)
        flops = np.logspace(15, 19, 16)
        loss = TRUE_A * flops**-TRUE_ALPHA * np.exp(0.01 * rng.standard_normal(16))
        frame = pd.DataFrame({"flops": flops, "loss": loss})
        model = bs.ScalingModel("test_pure_power_fit", noise="lognormal")
        # Two chains of 500 draws put sigma's R-hat near the 1.01 limit by chance alone.
        post = model.fit(frame, seed=0, num_warmup=1000, num_samples=1000, num_chains=2)
        yield law, frame, post
    finally:
        bs.LAWS.pop(law.name, None)


def test_user_law_can_be_fitted(user_law_fit):
    law, frame, post = user_law_fit
    assert post.spec.law == law.name
    assert post.spec.columns == {"x": "flops"}  # the table's only scale column
    assert post.diagnostics.ok, post.diagnostics.describe()
    summary = post.summary(ci_prob=0.99)
    # Reported in the papers' convention, so the simulated A and alpha come back directly.
    for name, truth in (("A", TRUE_A), ("alpha", TRUE_ALPHA)):
        assert summary.loc[name, "lower"] < truth < summary.loc[name, "upper"], summary
    fitted = bs.forecast(post, frame, kind="mean")["median"]
    np.testing.assert_allclose(fitted, TRUE_A * frame["flops"] ** -TRUE_ALPHA, rtol=0.02)


def test_saved_user_law_fit_needs_the_law_registered(user_law_fit, tmp_path):
    law, _, post = user_law_fit
    path = post.save(tmp_path / "user.nc")
    bs.LAWS.pop(law.name)
    try:
        with pytest.raises(LoadError, match="register_law"):
            bs.load(path)
    finally:
        bs.register_law(law)
    assert bs.load(path).spec == post.spec


def test_a_lower_bound_shifts_a_positive_parameter():
    bounded = Param("positive", Prior(math.log(9.0), 1.0), lower=1.0)
    assert float(bounded.from_unconstrained(jnp.asarray(math.log(9.0)))) == pytest.approx(10.0)
    # Far down the unconstrained scale the value approaches the bound, not zero.
    assert float(bounded.from_unconstrained(jnp.asarray(-5.0))) == pytest.approx(1 + math.exp(-5))
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(SpecError, match="finite and >= 0"):
            Param("positive", Prior(0.0, 1.0), lower=bad)
    with pytest.raises(SpecError, match="lower bound"):
        Param("real", Prior(0.0, 1.0), lower=1.0)
    with pytest.raises(SpecError, match="lower bound"):
        Param("positive", Prior(0.0, 1.0), coordinate="linear", lower=1.0)
