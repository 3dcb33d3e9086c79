"""The grouped mass matrix: layout, the Normal's map, and its estimates from curvature and draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale import mass, starting
from bayescale.inference import GROUPED_MASS_MIN_GROUPS, _sampler_config

SHAPES = {"A_w": (3,), "E_mu_v": (), "E_w": (3,), "alpha_z": ()}


def test_layout_follows_the_sorted_sites():
    layout = mass.group_layout(SHAPES, 3)
    # Sorted: A_w at 0-2, E_mu_v at 3, E_w at 4-6, alpha_z at 7.
    np.testing.assert_array_equal(layout.group, [[0, 4], [1, 5], [2, 6]])
    np.testing.assert_array_equal(layout.shared, [3, 7])
    assert layout.size == 8
    assert mass.group_layout({"a": (), "b": ()}, 3) is None  # nothing per group
    assert mass.group_layout({"a": (3,), "b": (2, 3)}, 3) is None  # a shape it does not know


def arrow_precision(layout: mass.GroupLayout, rng: np.random.Generator) -> np.ndarray:
    """A random positive definite precision whose groups couple only with the shared entries.

    Its conditional blocks have eigenvalues well above 1, so the curvature clipping of the
    Laplace start leaves it exact.
    """
    d = layout.size
    precision = np.zeros((d, d))
    shared = layout.shared
    for own in layout.group:
        block = np.concatenate([own, shared])
        root = rng.normal(size=(block.size, block.size))
        precision[np.ix_(block, block)] += root @ root.T + 3 * np.eye(block.size)
    return precision


def matrix_of(normal: mass.GroupedNormal, layout: mass.GroupLayout) -> np.ndarray:
    """The matrix A of z = m + A y, column by column."""
    columns = jax.vmap(lambda y: mass.from_standard(normal, layout, y) - normal.mean)
    return np.asarray(columns(jnp.eye(layout.size))).T


def test_laplace_fit_of_an_arrow_hessian_is_its_inverse(rng):
    layout = mass.group_layout(SHAPES, 3)
    precision = arrow_precision(layout, rng)
    directions = mass.curvature_directions(layout)
    assert directions.shape == (2 + 2, 8)  # one per per-group site, one per shared entry
    mode = jnp.asarray(rng.normal(size=8), dtype=jnp.float32)
    products = jnp.asarray(precision @ directions.T, dtype=jnp.float32)
    normal = mass.from_curvature(products, mode, layout)
    matrix = matrix_of(normal, layout)
    np.testing.assert_allclose(matrix @ matrix.T, np.linalg.inv(precision), atol=2e-5)
    # The map and its inverse.
    y = jnp.asarray(rng.normal(size=8), dtype=jnp.float32)
    z = mass.from_standard(normal, layout, y)
    np.testing.assert_allclose(mass.to_standard(normal, layout, z), y, atol=1e-4)


def test_hessian_products_of_a_quadratic_are_its_precision(rng):
    layout = mass.group_layout(SHAPES, 3)
    precision = jnp.asarray(arrow_precision(layout, rng), dtype=jnp.float32)
    centre = jnp.asarray(rng.normal(size=8), dtype=jnp.float32)
    directions = jnp.asarray(mass.curvature_directions(layout), dtype=jnp.float32)
    point = jnp.asarray(3 * rng.normal(size=8), dtype=jnp.float32)
    products = starting.hessian_products(lambda z: precision @ (z - centre), point, directions)
    np.testing.assert_allclose(products, precision @ directions.T, rtol=1e-3, atol=1e-3)


def test_a_non_finite_hessian_gives_the_identity():
    layout = mass.group_layout(SHAPES, 3)
    products = jnp.full((8, 4), jnp.nan)
    normal = mass.from_curvature(products, jnp.zeros(8), layout)
    np.testing.assert_allclose(matrix_of(normal, layout), np.eye(8), atol=1e-6)


def window_of(draws: np.ndarray, layout: mass.GroupLayout) -> mass.GroupedMoments:
    update = jax.jit(lambda z, m: mass.moments_update(z, m, layout))
    return jax.lax.scan(lambda m, z: (update(z, m), None), mass.moments_init(layout), draws)[0]


def test_window_estimate_recovers_an_arrow_covariance(rng):
    layout = mass.group_layout(SHAPES, 3)
    precision = arrow_precision(layout, rng)
    covariance = np.linalg.inv(precision)
    # The regression of each group on the shared entries, from the curvature.
    products = jnp.asarray(precision @ mass.curvature_directions(layout).T, dtype=jnp.float32)
    coefficients = mass.curvature_coefficients(products, layout, jnp.zeros((3, 2, 2)))
    shared = layout.shared
    for g, own in enumerate(layout.group):
        regression = covariance[np.ix_(own, shared)] @ np.linalg.inv(
            covariance[np.ix_(shared, shared)]
        )
        np.testing.assert_allclose(coefficients[g], regression, atol=1e-4)
    centre = rng.normal(size=8)
    draws = rng.multivariate_normal(centre, covariance, size=20000).astype(np.float32)
    moments = window_of(draws, layout)
    previous = mass.standard_normal(layout)
    normal = mass.from_moments(moments, previous, layout, coefficients)
    np.testing.assert_allclose(normal.mean, centre, atol=0.05)
    matrix = matrix_of(normal, layout)
    estimate = matrix @ matrix.T
    # 20,000 draws: the covariance within a few percent of each variance.
    scale = np.sqrt(np.outer(np.diag(covariance), np.diag(covariance)))
    assert np.max(np.abs(estimate - covariance) / scale) < 0.05
    # Few draws lean on the previous Normal: weight n / (n + k + s). With B_g = 0 the
    # Normal's variances are the shrunk blocks' own.
    few = window_of(draws[:4], layout)
    leaning = matrix_of(mass.from_moments(few, previous, layout, jnp.zeros((3, 2, 2))), layout)
    window = np.cov(draws[:4], rowvar=False)
    weight = 4 / (4 + 2 + 2)
    expected_variance = weight * np.diag(window) * 4 / (4 + 5) + (1 - weight)
    np.testing.assert_allclose(
        np.diag(leaning @ leaning.T), expected_variance + weight * 1e-3 * 5 / 9, rtol=1e-3
    )


def test_window_estimate_standardises_the_draws_for_any_regression(rng):
    # With B_g other than the draws' regression, each group's conditional block is the
    # covariance of z_g - B_g z_S, so every standard coordinate of the draws has unit variance.
    layout = mass.group_layout(SHAPES, 3)
    covariance = np.linalg.inv(arrow_precision(layout, rng))
    draws = rng.multivariate_normal(np.zeros(8), covariance, size=20000).astype(np.float32)
    coefficients = jnp.asarray(rng.normal(size=(3, 2, 2)), dtype=jnp.float32)
    normal = mass.from_moments(
        window_of(draws, layout), mass.standard_normal(layout), layout, coefficients
    )
    y = jax.vmap(lambda z: mass.to_standard(normal, layout, z))(draws)
    np.testing.assert_allclose(np.var(np.asarray(y), axis=0), 1.0, atol=0.01)
    # A Hessian that is not finite keeps the fallback regression.
    nan_products = jnp.full((8, 4), jnp.nan)
    kept = mass.curvature_coefficients(nan_products, layout, coefficients)
    np.testing.assert_array_equal(kept, coefficients)


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")
def test_grouped_mass_matrix_samples_the_posterior_of_the_dense_one(grouped_post, gadre_c4_runs):
    model = bs.ScalingModel("power", x="flops", group="dataset", pooling=grouped_post.spec.pooling)
    settings = {k: grouped_post.meta["sampler"][k] for k in ("num_warmup", "num_samples")}
    post = model.fit(gadre_c4_runs, seed=1, dense_mass="groups", num_chains=2, **settings)
    assert post.meta["sampler"]["dense_mass"] == "groups"
    # Two chains of 500 draws: R-hat above 1.01 happens by chance, above 1.05 it does not.
    assert post.diagnostics.num_divergent == 0
    assert post.diagnostics.table["r_hat"].max() < 1.05
    reference = grouped_post.idata.posterior
    for name in ("alpha", "E", "A"):
        mean = reference[name].values.mean(axis=(0, 1))
        sd = reference[name].values.std(axis=(0, 1))
        # Within 0.4 posterior sds: several times the Monte Carlo error of either mean.
        np.testing.assert_array_less(
            np.abs(post.idata.posterior[name].values.mean(axis=(0, 1)) - mean), 0.4 * sd
        )


def test_dense_mass_is_checked(gadre_c4_runs, chinchilla_runs):
    with pytest.raises(bs.SpecError, match="unknown dense_mass 'full'"):
        bs.ScalingModel("chinchilla").fit(chinchilla_runs, dense_mass="full")
    # Nothing per group to couple with the shared parameters: an error, not a silent switch.
    with pytest.raises(bs.SpecError, match="no parameter of this model takes a value per group"):
        bs.ScalingModel("chinchilla").fit(chinchilla_runs, dense_mass="groups")
    shared = bs.ScalingModel(
        "power", x="flops", group="dataset", pooling={"E": "shared", "A": "shared"}
    )
    with pytest.raises(bs.SpecError, match="pooling .*'E': 'shared'"):
        shared.fit(gadre_c4_runs, dense_mass="groups")


def test_many_groups_default_to_the_grouped_mass_matrix(gadre_c4_runs):
    def default_mass(frame: pd.DataFrame, **kwargs) -> bool | str:
        model = bs.ScalingModel("power", x="flops", group="dataset", **kwargs)
        spec, _ = model.specify(frame)
        return _sampler_config(model, spec, {})["dense_mass"]

    copies = -(-GROUPED_MASS_MIN_GROUPS // 3)
    many = pd.concat(
        [gadre_c4_runs.assign(dataset=gadre_c4_runs.dataset + f"-{i}") for i in range(copies)]
    )
    assert many["dataset"].nunique() >= GROUPED_MASS_MIN_GROUPS
    assert default_mass(many) == "groups"
    assert default_mass(gadre_c4_runs) is True  # three groups
    # Nothing per group: every entry is shared, and the dense matrix is that structure.
    assert default_mass(many, pooling={"E": "shared", "A": "shared"}) is True


def test_laplace_start_with_grouped_directions_finds_the_arrow_covariance(rng):
    # The Hessian of a Normal with an arrow precision, differenced along one direction per
    # per-group site and per shared entry, gives its whole covariance.
    layout = mass.group_layout(SHAPES, 3)
    precision = arrow_precision(layout, rng) / 2
    centre = jnp.asarray(rng.normal(size=8), dtype=jnp.float32)
    precision_f32 = jnp.asarray(precision, dtype=jnp.float32)

    def potential(x):
        return 0.5 * (x - centre) @ precision_f32 @ (x - centre)

    chains = 4
    keys = jax.random.split(jax.random.PRNGKey(0), 2 * chains).reshape(2, chains, 2)
    start = starting.find_starts(
        keys[0],
        keys[1],
        lambda key: jax.random.uniform(key, (8,), minval=-1.0, maxval=1.0),
        jax.vmap(jax.value_and_grad(potential)),
        laplace=mass.grouped_laplace(layout),
    )
    for chain in range(chains):
        normal = jax.tree.map(lambda a, c=chain: a[c], start.approximation)
        matrix = matrix_of(normal, layout)
        np.testing.assert_allclose(matrix @ matrix.T, np.linalg.inv(precision), atol=1e-3)


@pytest.mark.filterwarnings("ignore::bayescale.SamplingWarning")
def test_grouped_mass_matrix_runs_in_vectorised_lanes(grouped_post, gadre_c4_runs):
    # fit_many runs every chain of every table as one lane of a vectorised sampler.
    model = bs.ScalingModel("power", x="flops", group="dataset", pooling=grouped_post.spec.pooling)
    fits = bs.fit_many(model, [gadre_c4_runs, gadre_c4_runs], seed=2, dense_mass="groups")
    reference = grouped_post.idata.posterior["alpha"].values
    for post in fits:
        assert post.meta["sampler"]["chain_method"] == "batched"
        assert post.diagnostics.num_divergent == 0
        alpha = post.idata.posterior["alpha"].values.mean()
        assert abs(alpha - reference.mean()) < 0.4 * reference.std()
