"""Benchmark: the package at two git revisions, cold and warm fits side by side.

Each revision is checked out (`git worktree add --detach`) into a temporary folder, removed at
the end. Every fit runs in a fresh Python process with that folder first on ``PYTHONPATH`` and
the on-disk compilation cache off, on speed.py's problems (the 240 Chinchilla runs; simulated
groups of 30 runs), with the problems and timing of this checkout's speed.py: "cold" is the
first `ScalingModel.fit` (tracing and compiling included), "warm" a second identical fit in the
same process (the compiled program reused). The revisions alternate, pair after pair, so that
the machine's drift falls on both alike.

Run from the repository root::

    python benchmarks/revisions.py a074d60 HEAD                  # 3 pairs, 1, 10, 100 groups
    python benchmarks/revisions.py a074d60 HEAD --pairs 1 --groups 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale.inference import CACHE_ENV  # noqa: E402

PROBLEM_GROUPS = (1, 10, 100)


def cold_and_warm(groups: int) -> dict:
    """In this process: a cold and a warm fit of one problem, with the package imported."""
    problem = speed.problem_for(groups)
    post, cold = speed.timed_fit(problem)
    _, warm = speed.timed_fit(problem)
    stats = post.idata.sample_stats
    return {
        "problem": problem.name,
        "runs": len(problem.frame),
        "cold": cold,
        "warm": warm,
        "steps": float(stats["n_steps"].values.mean()),
        "rhat": float(post.summary()["r_hat"].max()),
    }


def spread(values: list[float]) -> str:
    """Mean and range, in seconds."""
    return f"{np.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def table(results: dict[tuple[int, str], list[dict]], column: str) -> str:
    """Mean (and range) of cold and warm wall times per problem and ``column`` (the variant)."""
    lines = [
        f"| problem | runs | {column} | cold fit s, mean (range) | warm fit s, mean (range) "
        "| grad evals/draw | max R-hat |",
        "|---|---:|---|---|---|---:|---:|",
    ]
    for (_, variant), fits in results.items():
        cold, warm = (spread([f[key] for f in fits]) for key in ("cold", "warm"))
        steps = np.mean([f["steps"] for f in fits])
        lines.append(
            f"| {fits[0]['problem']} | {fits[0]['runs']} | {variant} | {cold} | {warm} "
            f"| {steps:.1f} | {max(f['rhat'] for f in fits):.3f} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def checkouts(revisions: list[str]) -> Iterator[dict[str, Path]]:
    """A temporary worktree per revision, named by its short commit hash."""
    trees: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="bayescale-revisions-") as root:
        try:
            for revision in revisions:
                commit = git("rev-parse", "--short", revision)
                trees[commit] = Path(root) / commit
                git("worktree", "add", "--detach", str(trees[commit]), commit)
            yield trees
        finally:
            for tree in trees.values():
                git("worktree", "remove", "--force", str(tree))


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def in_new_process(groups: int, tree: Path) -> dict:
    """`cold_and_warm` in a fresh interpreter that imports the package from ``tree``."""
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    command = [sys.executable, __file__, "--one", str(groups), str(tree)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revisions", nargs="*", help="revisions (default HEAD~1 HEAD)")
    parser.add_argument("--pairs", type=int, default=3, help="alternating pairs per problem")
    parser.add_argument("--groups", type=int, nargs="+", default=list(PROBLEM_GROUPS))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        groups, tree = int(args.one[0]), Path(args.one[1])
        if Path(bs.__file__).resolve().parent != (tree / "bayescale").resolve():
            raise RuntimeError(f"imported {bs.__file__}, not the package in {tree}")
        print(json.dumps(cold_and_warm(groups)))
        return
    revisions = args.revisions or ["HEAD~1", "HEAD"]
    os.environ[CACHE_ENV] = ""  # what the fits' processes get; shown in the header
    print(speed.cf.environment(bs.ScalingModel.default_sampler_config["num_chains"]), flush=True)
    results: dict[tuple[int, str], list[dict]] = {}
    with checkouts(revisions) as trees:
        for groups in args.groups:
            for _ in range(args.pairs):
                for commit, tree in trees.items():
                    results.setdefault((groups, commit), []).append(in_new_process(groups, tree))
    print(table(results, "git"))
    print(f"\nload average at end (1, 5, 15 min): {speed.cf.load_average()}")


if __name__ == "__main__":
    main()
