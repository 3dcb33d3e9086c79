"""Starting points and the Laplace start, on densities with known answers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from bayescale import starting


def find_starts(potential, size: int, chains: int, *, seed: int = 0, laplace: bool = True):
    """`starting.find_starts` with uniform candidates in [-1, 1]^size."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 2 * chains).reshape(2, chains, 2)

    def draw_point(key):
        return jax.random.uniform(key, (size,), minval=-1.0, maxval=1.0)

    energy_and_grad = jax.vmap(jax.value_and_grad(potential))
    laplace_start = starting.dense_laplace(size) if laplace else None
    return starting.find_starts(
        keys[0], keys[1], draw_point, energy_and_grad, laplace=laplace_start
    )


def test_laplace_start_of_a_normal_is_its_covariance():
    # Variances below 1: the Laplace curvature floor (`CURVATURE_RANGE`) leaves them exact.
    covariance = jnp.array([[0.6, 0.4, 0.0], [0.4, 0.5, 0.05], [0.0, 0.05, 0.05]])
    centre = jnp.array([1.0, -2.0, 0.5])
    precision = jnp.linalg.inv(covariance)

    def potential(x):
        return 0.5 * (x - centre) @ precision @ (x - centre)

    num_starts = 2000
    start = find_starts(potential, 3, num_starts)
    np.testing.assert_allclose(start.approximation.covariance[0], covariance, rtol=0.02, atol=2e-3)
    # Starts are draws of N(mode, covariance): whitened, independent standard normals around a
    # mode within the posterior's bulk (the mode search need not reach the centre exactly).
    whitened = np.linalg.solve(np.linalg.cholesky(covariance), (start.z - centre).T).T
    bound = 4 / np.sqrt(num_starts)
    np.testing.assert_allclose(np.cov(whitened, rowvar=False), np.eye(3), atol=bound * 2**0.5)
    assert np.all(np.abs(whitened.mean(axis=0)) < 0.5)
    # The potential and gradient handed to the sampler are those of the start.
    energy, grad = jax.vmap(jax.value_and_grad(potential))(start.z)
    np.testing.assert_allclose(start.energy, energy, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(start.grad, grad, rtol=1e-4, atol=1e-4)


def test_laplace_covariance_is_the_inverse_hessian_at_the_mode():
    # Not a Normal: central differences of the gradient must give the curvature at the mode.
    centre = jnp.array([0.3, -0.5, 0.2])

    def potential(x):
        return 3 * jnp.sum(jnp.cosh(x - centre)) + 0.5 * (x[0] - x[1]) ** 2 + x[2] ** 4

    energy_and_grad = jax.jit(jax.value_and_grad(potential))

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        energy, grad = energy_and_grad(jnp.asarray(x, dtype=jnp.float32))
        return float(energy), np.asarray(grad, dtype=float)

    mode = scipy.optimize.minimize(objective, np.zeros(3), jac=True, tol=1e-10).x
    expected = np.linalg.inv(jax.hessian(potential)(jnp.asarray(mode, dtype=jnp.float32)))
    start = find_starts(potential, 3, 4)
    for covariance in np.asarray(start.approximation.covariance):
        np.testing.assert_allclose(covariance, expected, rtol=2e-3, atol=2e-4)


def test_laplace_covariance_ignores_non_finite_gradients_before_the_differences():
    # Not finite on half the search box, so the search retries there: only the central
    # differences around the mode may make the Hessian.
    covariance = jnp.array([[0.3, 0.1], [0.1, 0.2]])
    precision = jnp.linalg.inv(covariance)
    centre = jnp.array([1.5, 0.0])

    def potential(x):
        # NaN, with a NaN gradient, where x[0] < 0; the Normal elsewhere.
        return 0.5 * (x - centre) @ precision @ (x - centre) + 0.0 * jnp.sqrt(x[0])

    start = find_starts(potential, 2, 16, seed=3)
    assert np.all(start.found)
    for found in np.asarray(start.approximation.covariance):
        np.testing.assert_allclose(found, covariance, rtol=0.02, atol=2e-3)


def test_laplace_start_falls_back_where_the_density_is_not_finite():
    # Finite only on a narrow slab: the Laplace draw of a flat direction lands outside it, and
    # the uniform search needs several tries to land inside.
    def potential(x):
        inside = jnp.abs(x[1]) < 0.2
        return jnp.where(inside, 0.5 * x[0] ** 2, jnp.inf)

    start = find_starts(potential, 2, 8, seed=1)
    assert np.all(start.found)
    assert np.all(np.isfinite(jax.vmap(potential)(start.z)))
    np.testing.assert_allclose(start.energy, jax.vmap(potential)(start.z))


def test_laplace_start_keeps_the_mode_when_the_draw_is_atypical():
    # Normal near the mode, a steep wall beyond 0.1: draws of the Normal mostly land on the wall,
    # where the potential is finite but far above chi-square(1) / 2.
    def potential(x):
        return 0.5 * x[0] ** 2 + 1e6 * jnp.maximum(jnp.abs(x[0]) - 0.1, 0.0) ** 2

    start = find_starts(potential, 1, 200, seed=2)
    assert np.all(np.abs(np.asarray(start.z)) <= 0.1 + 1e-3)


def test_search_reports_chains_without_a_finite_start():
    def potential(x):
        return jnp.where(x[0] > 2.0, 0.0, jnp.inf)  # finite only outside the search box

    start = find_starts(potential, 1, 3, laplace=False)
    assert start.approximation is None
    assert not np.any(start.found)


def test_search_keeps_the_first_finite_draw():
    def potential(x):
        return jnp.where(x[0] > 0.0, jnp.sum(x**2), jnp.nan)

    start = find_starts(potential, 2, 64, laplace=False)
    assert np.all(start.found) and np.all(start.z[:, 0] > 0)
    np.testing.assert_allclose(start.energy, jnp.sum(start.z**2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(start.grad, 2 * start.z, rtol=1e-6)
