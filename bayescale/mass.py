"""A mass matrix that follows the posterior's group structure, for fits of many groups.

In a grouped model every run depends on its own group's parameters and on the shared ones
(exponents, noise, population centres and spreads), so the posterior's precision couples each
group's entries with the shared entries only: an arrow. A Normal of that shape is written here
as the shared entries' Normal and, given them, each group's own:

    z_S ~ N(m_S, F F^T),    z_g | z_S ~ N(m_g + B_g (z_S - m_S), C_g C_g^T),

and NUTS runs on the standard Normal coordinates y of that map (z = m + A y, with A lower
triangular), which is NUTS in z with inverse mass matrix A A^T. A step costs O(d) where a dense
matrix costs O(d^2), and each block is estimated from the draws of one group and the shared
entries (k + s dimensions) instead of all d at once: with hundreds of groups a warmup window of
25 to 500 draws does not estimate a d x d covariance. The regressions B_g come from the Hessian
(`curvature_coefficients`), whose error does not add up over the groups as the draws' does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from bayescale.starting import Laplace, clipped_curvatures

# Stan's regularisation of a window's covariance: shrunk toward a small multiple of the identity
# with the weight of this many pseudo-draws.
REGULARISE_DRAWS = 5.0
REGULARISE_VARIANCE = 1e-3


class GroupLayout(NamedTuple):
    """Where each group's own entries and the shared entries lie in the flat latent vector.

    Attributes
    ----------
    group : ndarray of int
        Flat positions of each group's entries, shape (groups, k): one per per-group site.
    shared : ndarray of int
        Flat positions of the shared entries, shape (s,).
    """

    group: np.ndarray
    shared: np.ndarray

    @property
    def size(self) -> int:
        """Length d of the flat vector."""
        return self.group.size + self.shared.size

    @property
    def block_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Block shapes: shared (s, s), group x shared (groups, k, s), own (groups, k, k)."""
        groups, k = self.group.shape
        s = self.shared.size
        return (s, s), (groups, k, s), (groups, k, k)


def group_layout(shapes: Mapping[str, tuple[int, ...]], num_groups: int) -> GroupLayout | None:
    """Layout of a flat vector that concatenates ``shapes`` in sorted order of their names.

    Sites of shape ``(num_groups,)`` hold one entry per group, scalar sites are shared. None
    when no site is per group or a site has another shape: the structure does not apply.
    """
    group_columns, shared = [], []
    offset = 0
    for name in sorted(shapes):
        shape = tuple(shapes[name])
        if shape == ():
            shared.append(offset)
        elif shape == (num_groups,):
            group_columns.append(offset + np.arange(num_groups))
        else:
            return None
        offset += int(np.prod(shape))
    if not group_columns:
        return None
    return GroupLayout(np.stack(group_columns, axis=1), np.array(shared, dtype=int))


def curvature_directions(layout: GroupLayout) -> np.ndarray:
    """Directions whose Hessian products give every nonzero entry of an arrow Hessian.

    One direction per per-group site, moving that site's entry in every group at once (groups
    do not interact, so each group's response is its own column), and one per shared entry.
    Shape (k + s, d): 2 (k + s) gradient evaluations by central differences instead of 2 d.
    """
    num_sites = layout.group.shape[1]
    directions = np.zeros((num_sites + layout.shared.size, layout.size))
    for site in range(num_sites):
        directions[site, layout.group[:, site]] = 1.0
    directions[num_sites + np.arange(layout.shared.size), layout.shared] = 1.0
    return directions


class GroupedNormal(NamedTuple):
    """N(mean, A A^T) with an arrow-shaped precision; see the module docstring.

    Attributes
    ----------
    mean : jax.Array
        Centre, shape (d,).
    shared_factor : jax.Array
        F, lower Cholesky factor of the shared entries' covariance, shape (s, s).
    coefficients : jax.Array
        B_g, regression of each group's entries on the shared ones, shape (groups, k, s).
    group_factor : jax.Array
        C_g, lower Cholesky factors of each group's covariance given the shared entries, shape
        (groups, k, k).
    """

    mean: jax.Array
    shared_factor: jax.Array
    coefficients: jax.Array
    group_factor: jax.Array


def standard_normal(layout: GroupLayout) -> GroupedNormal:
    """Return N(0, I) in the grouped form."""
    shared, coupling, own = layout.block_shapes
    return GroupedNormal(
        jnp.zeros(layout.size),
        jnp.eye(shared[0]),
        jnp.zeros(coupling),
        jnp.broadcast_to(jnp.eye(own[-1]), own),
    )


def from_standard(normal: GroupedNormal, layout: GroupLayout, y: jax.Array) -> jax.Array:
    """Return the point z = m + A y of standard Normal coordinates ``y``, shape (d,)."""
    shift_shared = normal.shared_factor @ y[layout.shared]
    shift_group = jnp.einsum("gks,s->gk", normal.coefficients, shift_shared) + jnp.einsum(
        "gkl,gl->gk", normal.group_factor, y[layout.group]
    )
    return normal.mean.at[layout.shared].add(shift_shared).at[layout.group].add(shift_group)


def to_standard(normal: GroupedNormal, layout: GroupLayout, z: jax.Array) -> jax.Array:
    """Return the standard Normal coordinates y = A^-1 (z - m) of ``z``, shape (d,)."""
    shift = z - normal.mean
    shift_shared = shift[layout.shared]
    residual = shift[layout.group] - jnp.einsum("gks,s->gk", normal.coefficients, shift_shared)
    y_shared = solve_triangular(normal.shared_factor, shift_shared, lower=True)
    y_group = jax.vmap(lambda c, r: solve_triangular(c, r, lower=True))(
        normal.group_factor, residual
    )
    return jnp.zeros_like(z).at[layout.shared].set(y_shared).at[layout.group].set(y_group)


def from_curvature(products: jax.Array, mode: jax.Array, layout: GroupLayout) -> GroupedNormal:
    """Laplace approximation at ``mode`` from the Hessian's products with `curvature_directions`.

    ``products`` has shape (d, k + s). The Hessian's blocks are read off it: each group's own
    block H_gg, its coupling with the shared entries H_gS, and the shared block H_SS. The
    approximation's precision is the Hessian with the eigenvalues of H_gg (the precision of a
    group given the shared entries) and of the Schur complement H_SS - sum_g H_Sg H_gg^-1 H_gS
    (the precision of the shared entries) clipped (`starting.clipped_curvatures`). A Hessian
    that is not finite gives N(mode, I).
    """
    finite = jnp.all(jnp.isfinite(products))
    products = jnp.where(finite, products, curvature_directions(layout).T)
    own, coupling, shared = _hessian_blocks(products, layout)
    own_covariance, coefficients = _conditional_of_curvature(own, coupling)
    schur = shared + jnp.einsum("gks,gkt->st", coupling, coefficients)
    shared_covariance = _clipped_inverse(_symmetric(schur))
    return GroupedNormal(
        mode,
        jnp.linalg.cholesky(shared_covariance),
        coefficients,
        jnp.linalg.cholesky(own_covariance),
    )


def curvature_coefficients(
    products: jax.Array, layout: GroupLayout, fallback: jax.Array
) -> jax.Array:
    """Return B_g = -H_gg^-1 H_gS, each group's regression on the shared entries, (G, k, s).

    ``products`` as in `from_curvature`; ``fallback`` where they are not finite.
    """
    own, coupling, _ = _hessian_blocks(products, layout)
    coefficients = _conditional_of_curvature(own, coupling)[1]
    return jnp.where(jnp.all(jnp.isfinite(products)), coefficients, fallback)


def _hessian_blocks(
    products: jax.Array, layout: GroupLayout
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Return the Hessian's blocks H_gg (G, k, k), H_gS (G, k, s), H_SS (s, s) from products."""
    k = layout.group.shape[1]
    own = _symmetric(products[layout.group][:, :, :k])
    coupling = products[layout.group][:, :, k:]
    shared = _symmetric(products[layout.shared][:, k:])
    return own, coupling, shared


def _conditional_of_curvature(own: jax.Array, coupling: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each group's covariance given the shared entries, (G, k, k), and B_g, (G, k, s)."""
    own_covariance = jax.vmap(_clipped_inverse)(own)
    return own_covariance, -own_covariance @ coupling


def grouped_laplace(layout: GroupLayout) -> Laplace:
    """Return the Laplace start in the grouped form (`from_curvature`) for `find_starts`."""

    def fit(products: jax.Array, mode: jax.Array) -> GroupedNormal:
        return from_curvature(products, mode, layout)

    def draw(normal: GroupedNormal, standard: jax.Array) -> jax.Array:
        return from_standard(normal, layout, standard)

    return Laplace(curvature_directions(layout), fit, draw)


class GroupedMoments(NamedTuple):
    """Running mean and sums of squares (Welford) of the blocks a `GroupedNormal` needs.

    Attributes
    ----------
    mean : jax.Array
        Shape (d,).
    shared, coupling, own : jax.Array
        Sums of squared deviations: shared x shared (s, s), group x shared (groups, k, s) and
        group x group (groups, k, k).
    count : jax.Array
        Number of draws.
    """

    mean: jax.Array
    shared: jax.Array
    coupling: jax.Array
    own: jax.Array
    count: jax.Array


def moments_init(layout: GroupLayout) -> GroupedMoments:
    """Return moments of no draws."""
    blocks = (jnp.zeros(shape) for shape in layout.block_shapes)
    return GroupedMoments(jnp.zeros(layout.size), *blocks, jnp.array(0))


def moments_update(z: jax.Array, moments: GroupedMoments, layout: GroupLayout) -> GroupedMoments:
    """Add the draw ``z`` (d,) to ``moments``."""
    count = moments.count + 1
    before = z - moments.mean
    mean = moments.mean + before / count
    after = z - mean
    shared_before, shared_after = before[layout.shared], after[layout.shared]
    group_before, group_after = before[layout.group], after[layout.group]
    return GroupedMoments(
        mean,
        moments.shared + jnp.outer(shared_before, shared_after),
        moments.coupling + jnp.einsum("gk,s->gks", group_before, shared_after),
        moments.own + jnp.einsum("gk,gl->gkl", group_before, group_after),
        count,
    )


def from_moments(
    moments: GroupedMoments,
    previous: GroupedNormal,
    layout: GroupLayout,
    coefficients: jax.Array,
) -> GroupedNormal:
    """Return the Normal of a warmup window's draws, shrunk toward ``previous``.

    Each block of the window's covariance gets Stan's regularisation, and is then shrunk toward
    ``previous``'s with weight n / (n + k + s) for n draws: the dimension of one group with the
    shared entries, which is what each block is estimated over. The shrunk blocks give the
    shared entries' covariance and, with the regression ``coefficients`` B_g (groups, k, s),
    each group's covariance given the shared entries: that of z_g - B_g z_S.

    B_g comes from the caller (`curvature_coefficients` at the window's mean), not from the
    draws: the draws' regression errs by about 1 / sqrt(n) in each group, and a move of the
    shared coordinates carries every group's error along, so its curvature grows by about
    groups x k / n (2.4 at 400 groups of k = 3 and n = 500).
    """
    count = moments.count
    k = layout.group.shape[1]
    s = layout.shared.size
    keep = count / (count + REGULARISE_DRAWS)
    floor = REGULARISE_VARIANCE * REGULARISE_DRAWS / (count + REGULARISE_DRAWS)
    window = [block / (count - 1) * keep for block in moments[1:4]]
    window[0] = window[0] + floor * jnp.eye(s)
    window[2] = window[2] + floor * jnp.eye(k)
    weight = count / (count + k + s)
    blocks = [
        weight * new + (1 - weight) * old
        for new, old in zip(window, _covariance_blocks(previous), strict=True)
    ]
    shared, coupling, own = blocks
    crossed = coefficients @ jnp.swapaxes(coupling, 1, 2)
    conditional = own - crossed - jnp.swapaxes(crossed, 1, 2)
    conditional = conditional + coefficients @ shared @ jnp.swapaxes(coefficients, 1, 2)
    return GroupedNormal(
        moments.mean,
        jnp.linalg.cholesky(shared),
        coefficients,
        jnp.linalg.cholesky(_symmetric(conditional)),
    )


def _covariance_blocks(normal: GroupedNormal) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Covariance blocks of ``normal``: shared (s, s), group x shared (G, k, s), own (G, k, k)."""
    shared = normal.shared_factor @ normal.shared_factor.T
    coupling = normal.coefficients @ shared
    own = normal.group_factor @ jnp.swapaxes(normal.group_factor, 1, 2) + coupling @ jnp.swapaxes(
        normal.coefficients, 1, 2
    )
    return shared, coupling, own


def _symmetric(matrix: jax.Array) -> jax.Array:
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def _clipped_inverse(precision: jax.Array) -> jax.Array:
    """Inverse of a symmetric matrix with its eigenvalues clipped (`clipped_curvatures`)."""
    curvatures, axes = clipped_curvatures(precision)
    return (axes / curvatures) @ axes.T
