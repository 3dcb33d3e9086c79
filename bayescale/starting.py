"""Starting points, and a Laplace approximation for the first mass matrix, of many chains at once.

Everything here runs in one loop that evaluates the log density and its gradient at one point
per chain and iteration: first uniform draws until the density is finite, then (for the Laplace
start) Adam steps toward a posterior mode, central differences of the gradient around it, the
mode itself and a draw of the Normal approximation. One call site of the model's gradient in the
compiled program instead of one per stage: compiling a copy of the gradient costs more than a
fit of a few hundred runs spends evaluating it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpyro.optim import Adam

# Starting points are drawn uniformly in [-INIT_RADIUS, INIT_RADIUS] on the unconstrained
# scale (standardised latents: within a prior sd of the prior's centre), up to INIT_TRIES times
# until the log density and its gradient are finite.
INIT_RADIUS = 1.0
INIT_TRIES = 100
# The mode search: Adam steps and learning rate on the standardised unconstrained scale.
MODE_SEARCH_STEPS = 1000
MODE_SEARCH_RATE = 0.02
# Eigenvalues of the Hessian at the mode are clipped to this range: a flat or non-convex
# direction gets the standardised priors' unit variance in the Laplace mass matrix, not more.
CURVATURE_RANGE = (1.0, 1e8)
# A chain starts from a draw of the Laplace approximation only if the draw's potential is at most
# this many sds of chi-square(d) / 2 above its mean (an atypical draw means a poor approximation
# there, such as a mode search that stopped short); otherwise it starts at the mode.
TYPICAL_EXCESS_SDS = 4.0

# Stages of the loop, in order; the search lasts until every chain has a finite start.
SEARCH, DESCEND, DIFFERENCE, MODE, DRAW = range(5)

EnergyAndGrad = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


class Laplace(NamedTuple):
    """How a Normal approximation is built from the curvature at a mode, and drawn from.

    Attributes
    ----------
    directions : ndarray
        Directions along which the Hessian is differenced, shape (c, d).
    fit : callable
        The Hessian's products with the directions, shape (d, c), and the mode (d,), to the
        approximation (a pytree).
    draw : callable
        The approximation and a standard Normal vector (d,) to a draw of it (d,).
    """

    directions: np.ndarray
    fit: Callable[[jax.Array, jax.Array], Any]
    draw: Callable[[Any, jax.Array], jax.Array]


class DenseNormal(NamedTuple):
    """N(mean, axes diag(1 / curvatures) axes^T): a Hessian's clipped eigendecomposition."""

    mean: jax.Array
    curvatures: jax.Array
    axes: jax.Array

    @property
    def covariance(self) -> jax.Array:
        """The covariance matrix, shape (..., d, d)."""
        scaled = self.axes / self.curvatures[..., None, :]
        return jnp.einsum("...ij,...kj->...ik", scaled, self.axes)


def dense_laplace(size: int) -> Laplace:
    """Return the Laplace approximation with the full Hessian, differenced along every axis."""

    def fit(hessian: jax.Array, mode: jax.Array) -> DenseNormal:
        return DenseNormal(mode, *clipped_curvatures(hessian))

    def draw(normal: DenseNormal, standard: jax.Array) -> jax.Array:
        return normal.mean + (normal.axes / jnp.sqrt(normal.curvatures)) @ standard

    return Laplace(np.identity(size), fit, draw)


class Start(NamedTuple):
    """Where each chain starts, all arrays with a leading chain axis.

    Attributes
    ----------
    z : jax.Array
        Flattened unconstrained starting point, shape (chains, d).
    energy, grad : jax.Array
        Potential energy (negative log density) and its gradient there.
    approximation : pytree or None
        The Laplace approximation (`Laplace.fit`) per chain; None without the Laplace start.
    found : jax.Array
        Whether the search found a point with a finite density and gradient, shape (chains,).
    """

    z: jax.Array
    energy: jax.Array
    grad: jax.Array
    approximation: Any
    found: jax.Array


def find_starts(
    search_keys: jax.Array,
    draw_keys: jax.Array,
    draw_point: Callable[[jax.Array], jax.Array],
    energy_and_grad: EnergyAndGrad,
    *,
    laplace: Laplace | None,
) -> Start:
    """Return a starting point per chain, from a Laplace approximation unless ``laplace`` is None.

    Parameters
    ----------
    search_keys, draw_keys : jax.Array
        PRNG keys per chain, shape (chains, 2): for the uniform search, and for the draw of the
        Laplace approximation.
    draw_point : callable
        Key to a flattened uniform candidate point, shape (d,).
    energy_and_grad : callable
        Points of every chain, shape (chains, d), to their potentials (chains,) and gradients
        (chains, d).
    laplace : Laplace or None
        None: the first finite uniform draw. Otherwise: Adam from that point toward the
        minimum of the potential (non-finite gradient components skipped), and the Hessian's
        products with ``laplace.directions`` there by central differences of the gradient
        (`dense_laplace`: the whole Hessian, its eigenvalues clipped to `CURVATURE_RANGE`, the
        identity where it is not finite). ``laplace.fit`` makes a Normal of them; the chain
        starts from a draw of it if the draw's potential exceeds the mode's by no more than a
        draw of the Normal itself would (`TYPICAL_EXCESS_SDS` above the chi-square mean),
        otherwise at the mode, or at the uniform draw where the mode's density is not finite.
    """
    chains = search_keys.shape[0]
    size = jax.eval_shape(draw_point, search_keys[0]).shape[0]
    num_directions = 0 if laplace is None else laplace.directions.shape[0]
    directions = None if laplace is None else jnp.asarray(laplace.directions)
    optimizer = Adam(MODE_SEARCH_RATE)
    # Iterations after the search at which each later stage begins, and the end.
    stage_starts = jnp.array([MODE_SEARCH_STEPS, MODE_SEARCH_STEPS + 2 * num_directions])
    stop = MODE_SEARCH_STEPS + 2 * num_directions + 2 if laplace is not None else 0
    flat = jnp.zeros((chains, size))
    # Small per-chain state, which the stages' branches pass along; the d x d Hessian stays
    # outside them (a branch returning it would copy it at every iteration).
    state = {
        "searching": jnp.array(True),
        "tries": jnp.array(0),
        "step": jnp.array(0),
        "key": search_keys,
        "found": jnp.zeros(chains, bool),
        "z": flat,
        "energy": jnp.zeros(chains),
        "grad": flat,
    }
    if laplace is not None:
        state |= {
            "optimizer": optimizer.init(flat),
            "mode_energy": jnp.zeros(chains),
            "mode_grad": flat,
            "draw": flat,
        }

    def stage(c: dict) -> jax.Array:
        later = DESCEND + jnp.sum(c["step"] >= stage_starts) + (c["step"] == stop - 1)
        return jnp.where(c["searching"], SEARCH, later)

    def mode_of(c: dict) -> jax.Array:
        return optimizer.get_params(c["optimizer"])

    def offset(c: dict, row: jax.Array) -> jax.Array:
        """Central-difference step along direction ``row``, per chain (chains, 1)."""
        return difference_step(mode_of(c), directions[row])

    def difference_row(c: dict) -> tuple[jax.Array, jax.Array]:
        """Direction this iteration differences along, and the sign of its offset."""
        return difference_order(c["step"] - MODE_SEARCH_STEPS, num_directions)

    # Where each stage evaluates the potential.
    def search_point(c: dict) -> tuple[jax.Array, dict]:
        split = jax.vmap(jax.random.split)(c["key"])
        candidates = jax.vmap(draw_point)(split[:, 1])
        looking = ~c["found"][:, None]
        return jnp.where(looking, candidates, c["z"]), c | {
            "key": jnp.where(looking, split[:, 0], c["key"])
        }

    def descend_point(c: dict) -> tuple[jax.Array, dict]:
        return mode_of(c), c

    def difference_point(c: dict) -> tuple[jax.Array, dict]:
        row, sign = difference_row(c)
        return mode_of(c) + sign * offset(c, row) * directions[row], c

    def draw_point_of(c: dict) -> tuple[jax.Array, dict]:
        return c["draw"], c

    # What each stage keeps of the potential and gradient there.
    def after_search(c: dict, z, energy, grad, hessian) -> dict:
        finite = jnp.isfinite(energy) & jnp.all(jnp.isfinite(grad), axis=-1)
        found = c["found"] | finite
        tries = c["tries"] + 1
        c = c | {"z": z, "energy": energy, "grad": grad, "found": found, "tries": tries}
        c["searching"] = ~jnp.all(found) & (tries < INIT_TRIES)
        if laplace is not None:
            c["optimizer"] = optimizer.init(z)
        return c

    def after_descend(c: dict, z, energy, grad, hessian) -> dict:
        update = optimizer.update(jnp.where(jnp.isfinite(grad), grad, 0.0), c["optimizer"])
        return c | {"optimizer": update}

    def after_difference(c: dict, z, energy, grad, hessian) -> dict:
        return c

    def after_mode(c: dict, mode, energy, grad, hessian) -> dict:
        approximation = jax.vmap(laplace.fit)(hessian, mode)
        normal = jax.vmap(lambda key: jax.random.normal(key, (size,)))(draw_keys)
        draw = jax.vmap(laplace.draw)(approximation, normal)
        return c | {"mode_energy": energy, "mode_grad": grad, "draw": draw}

    def after_draw(c: dict, draw, energy, grad, hessian) -> dict:
        # Under the Normal, potential(draw) - potential(mode) is chi-square(d) / 2.
        half_d = size / 2
        typical = energy - c["mode_energy"] <= half_d + TYPICAL_EXCESS_SDS * half_d**0.5
        use_draw = jnp.isfinite(energy) & typical
        use_mode = jnp.isfinite(c["mode_energy"]) & ~use_draw

        def pick(at_draw, at_mode, at_search):
            def widen(flag):
                return flag.reshape(flag.shape + (1,) * (at_draw.ndim - 1))

            return jnp.where(
                widen(use_draw), at_draw, jnp.where(widen(use_mode), at_mode, at_search)
            )

        return c | {
            "z": pick(draw, mode_of(c), c["z"]),
            "energy": pick(energy, c["mode_energy"], c["energy"]),
            "grad": pick(grad, c["mode_grad"], c["grad"]),
        }

    points = [search_point, descend_point, difference_point, descend_point, draw_point_of]
    updates = [after_search, after_descend, after_difference, after_mode, after_draw]
    if laplace is None:
        points, updates = points[:1], updates[:1]

    def body(carry: tuple[dict, jax.Array]) -> tuple[dict, jax.Array]:
        c, hessian = carry
        index = stage(c)
        z, c = lax.switch(index, points, c)
        energy, grad = energy_and_grad(z)
        if laplace is not None:
            # Hessian times direction i: (grad(mode + h_i p_i) - grad(mode - h_i p_i)) / (2 h_i).
            # Other stages add nothing (not zero times their gradient, which may be inf or NaN).
            row, sign = difference_row(c)
            scale = sign / (2 * offset(c, row))
            hessian = hessian.at[:, :, row].add(jnp.where(index == DIFFERENCE, scale * grad, 0.0))
        c = lax.switch(index, updates, c, z, energy, grad, hessian)
        return c | {"step": jnp.where(index == SEARCH, c["step"], c["step"] + 1)}, hessian

    def running(carry: tuple[dict, jax.Array]) -> jax.Array:
        c, _ = carry
        return c["searching"] | (c["step"] < stop)

    hessian = jnp.zeros((chains, size, num_directions))
    c, hessian = lax.while_loop(running, body, (state, hessian))
    approximation = None if laplace is None else jax.vmap(laplace.fit)(hessian, mode_of(c))
    return Start(c["z"], c["energy"], c["grad"], approximation, c["found"])


def difference_step(point: jax.Array, direction: jax.Array) -> jax.Array:
    """Central-difference step along ``direction`` at ``point`` (..., d), shape (..., 1).

    The cube root of the float precision times max(1, |x_i|) over the coordinates the
    direction moves balances truncation and rounding error. Differences of the gradient, not
    its exact derivative: compiling the model's second derivatives takes several times longer
    than the sampler itself.
    """
    moved = jnp.max(jnp.abs(point) * direction, axis=-1, keepdims=True)
    return jnp.finfo(point.dtype).eps ** (1 / 3) * jnp.maximum(1.0, moved)


def difference_order(i: jax.Array, num_directions: int) -> tuple[jax.Array, jax.Array]:
    """Direction and sign of the ``i``-th of 2 c gradient evaluations: every + step, then every -.

    ``i`` is clipped to that range.
    """
    i = jnp.clip(i, 0, 2 * num_directions - 1)
    return i % num_directions, jnp.where(i < num_directions, 1.0, -1.0)


def hessian_products(
    gradient: Callable[[jax.Array], jax.Array], point: jax.Array, directions: jax.Array
) -> jax.Array:
    """Return the Hessian at ``point`` (d,) times each of ``directions`` (c, d), shape (d, c).

    Central differences of ``gradient``, evaluated in one loop (one call site to compile).
    """
    num_directions = directions.shape[0]

    def add_difference(i: jax.Array, products: jax.Array) -> jax.Array:
        row, sign = difference_order(i, num_directions)
        step = difference_step(point, directions[row])
        moved = gradient(point + sign * step * directions[row])
        return products.at[:, row].add(sign * moved / (2 * step))

    products = jnp.zeros((point.shape[0], num_directions), point.dtype)
    return lax.fori_loop(0, 2 * num_directions, add_difference, products)


def clipped_curvatures(hessian: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Return the eigenvalues, clipped to `CURVATURE_RANGE`, and eigenvectors of a Hessian.

    A Hessian that is not finite is replaced by the identity.
    """
    finite = jnp.all(jnp.isfinite(hessian))
    hessian = jnp.where(finite, hessian, jnp.identity(hessian.shape[-1]))
    curvatures, axes = jnp.linalg.eigh(0.5 * (hessian + hessian.T))
    return jnp.clip(curvatures, *CURVATURE_RANGE), axes
