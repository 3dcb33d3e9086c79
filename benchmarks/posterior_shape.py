"""Probe: how correlated is the grouped Chinchilla posterior, and which mass matrix would fit it?

Fits ``speed.py``'s simulated grouped problems (30 runs per group, Student-t noise) with the
default sampler and takes the correlation matrix of the draws in the coordinates the sampler
moves: E, A, B per group at the reference scale, the population centres (reference scale), log
spreads, 1/alpha, 1/beta, log sigma and log nu. Then the condition number of that matrix after
three preconditioners, i.e. what each mass matrix would leave to NUTS's step size:

* diagonal: the correlation matrix itself (a diagonal mass matrix removes only the scales);
* covariance blocks: the correlation matrix kept on each group's 3 x 3 block and on the shared
  parameters' block, zero elsewhere;
* precision blocks: its inverse kept on the same blocks, zero elsewhere.

The last is the structure of the model: given the shared parameters the groups are independent,
so the exact precision is zero between groups (though not between a group and the shared
parameters, which these blocks also leave out). For scale, the script also prints the condition
number of a correlation matrix of independent normal draws of the same size.

Run from the repository root::

    python benchmarks/posterior_shape.py 100 200       # group counts
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from speed import NOISE, SEED, simulated_problem

import bayescale as bs

AMPLITUDES = ("E", "A", "B")
SHARED = (
    "E_mu",
    "A_mu",
    "B_mu",
    "log E_tau",
    "log A_tau",
    "log B_tau",
    "1/alpha",
    "1/beta",
    "log sigma",
    "log nu",
)


def sampler_coordinates(post: bs.Posterior) -> np.ndarray:
    """Draws x coordinates: every group's E, A, B (grouped by parameter), then `SHARED`."""
    ref = post.draws()  # the reference convention, in which the sampler moves the amplitudes
    spec, posterior = post.spec, post.idata.posterior

    def flat(name: str) -> np.ndarray:
        return posterior[name].stack(sample=("chain", "draw")).values

    def centre_at_reference(amplitude: str) -> np.ndarray:
        exponent, scale = spec.law_obj.amplitudes[amplitude]
        log_ref = np.log(spec.references[spec.columns[scale]])
        return flat(f"{amplitude}_mu") * np.exp(-ref[exponent] * log_ref)

    shared = [
        flat("E_mu"),
        centre_at_reference("A"),
        centre_at_reference("B"),
        *(np.log(flat(f"{k}_tau")) for k in AMPLITUDES),
        1 / ref["alpha"],
        1 / ref["beta"],
        np.log(ref["sigma"]),
        np.log(ref["nu"]),
    ]
    return np.column_stack([ref[k] for k in AMPLITUDES] + [c[:, None] for c in shared])


def condition_after(corr: np.ndarray, preconditioner: np.ndarray) -> float:
    """Condition number of ``corr`` in the metric of ``preconditioner`` (a covariance)."""
    values, vectors = np.linalg.eigh(preconditioner)
    inverse_root = (vectors / np.sqrt(values)) @ vectors.T
    eigen = np.linalg.eigvalsh(inverse_root @ corr @ inverse_root)
    return float(eigen.max() / eigen.min())


def blocks(groups: int) -> np.ndarray:
    """Boolean mask of each group's E, A, B block and of the shared parameters' block."""
    size = len(AMPLITUDES) * groups + len(SHARED)
    mask = np.zeros((size, size), dtype=bool)
    for g in range(groups):
        index = g + groups * np.arange(len(AMPLITUDES))
        mask[np.ix_(index, index)] = True
    shared = len(AMPLITUDES) * groups
    mask[shared:, shared:] = True
    return mask


def report(groups: int) -> str:
    """Fit ``groups`` groups and describe the correlation of its draws, as markdown lines."""
    problem = simulated_problem(groups)
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=NOISE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)
        start = time.perf_counter()
        post = model.fit(problem.frame, seed=SEED, progress_bar=False)
        wall = time.perf_counter() - start
    draws = sampler_coordinates(post)
    corr = np.corrcoef(draws, rowvar=False)
    mask = blocks(groups)
    size, shared = corr.shape[0], len(AMPLITUDES) * groups
    within = np.abs(np.where(mask, corr, 0) - np.eye(size))[:shared, :shared].max()
    cross = np.abs(corr[shared:, :shared]).max(axis=1)
    between = np.abs(np.where(mask, 0, corr))[:shared, :shared]
    eigen = np.linalg.eigvalsh(corr)
    precision_blocks = np.linalg.inv(np.where(mask, np.linalg.inv(corr), 0))
    noise = np.linalg.eigvalsh(
        np.corrcoef(np.random.default_rng(SEED).standard_normal(draws.shape), rowvar=False)
    )
    top = np.argsort(-cross)[:3]
    return "\n".join(
        [
            f"### {groups} groups (d = {size}): fit {wall:.1f} s, {draws.shape[0]} draws, "
            f"max R-hat {post.diagnostics.table['r_hat'].max():.3f}",
            "",
            f"- largest |correlation| within a group's E, A, B: {within:.3f}",
            "- largest |correlation| of a shared parameter with a group parameter: "
            + ", ".join(f"{SHARED[i]} {cross[i]:.3f}" for i in top),
            f"- |correlation| between parameters of different groups: largest {between.max():.3f},"
            f" mean {between.sum() / (shared * shared - shared * len(AMPLITUDES)):.3f}",
            f"- condition number, diagonal: {eigen.max() / eigen.min():.0f}",
            f"- condition number, covariance blocks: "
            f"{condition_after(corr, np.where(mask, corr, 0)):.0f}",
            f"- condition number, precision blocks: {condition_after(corr, precision_blocks):.0f}",
            f"- for scale, independent normal draws of this size: {noise.max() / noise.min():.1f}",
            "",
        ]
    )


def main() -> None:
    """Parse the group counts and print one report per count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", type=int, help="simulated group counts, each >= 2")
    args = parser.parse_args()
    print("## Posterior correlation of the grouped Chinchilla model\n", flush=True)
    for groups in args.groups:
        print(report(groups), flush=True)


if __name__ == "__main__":
    main()
