"""Benchmark: resident memory of a many-group fit, with and without handing free heap back.

Fits ``speed.py``'s simulated problem (the Chinchilla law, 30 runs per group, E, A, B partially
pooled, Student-t noise) with bayescale's default sampler, 4 chains x ``--draws`` warmup /
``--draws`` draws, each fit in a fresh Python process. A thread samples the process's resident
set size (``VmRSS``) once a second. Columns: the fit's wall time; resident memory before the fit
(after imports and simulation), its peak during the fit, at the fit's end, and after a final
``malloc_trim(0)`` (what glibc held free); ``release`` says whether the sampler handed the C
heap's free pages back at its check-ins: it does from ``RELEASE_MEMORY_MIN_RUNS`` runs over all
chains (``bayescale.sampler``), and ``--no-release`` turns it off for every fit by raising that
threshold out of reach. Linux only (reads ``/proc``).

Run from the repository root::

    python benchmarks/memory.py --groups 1000 3000 --draws 60
    python benchmarks/memory.py --groups 3000 --draws 60 --no-release
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

HEADER = (
    "| groups | draws per chain | release | wall s | before GB | peak GB | at end GB | "
    "after malloc_trim GB |\n|---:|---:|---|---:|---:|---:|---:|---:|"
)


def resident_gb() -> float:
    """This process's resident set size in GB (10^9 bytes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1e3 / 1e9
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(groups: int, draws: int, release: bool) -> dict[str, float]:
    """Fit one problem in this process and return its memory figures."""
    import bayescale as bs
    from bayescale import sampler
    from bayescale._heap import release_free_memory

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import speed

    if not release:
        sampler.RELEASE_MEMORY_MIN_RUNS = float("inf")
    problem = speed.simulated_problem(groups)
    model = bs.ScalingModel("chinchilla", group=problem.group, noise=speed.NOISE)
    before = peak = resident_gb()
    fitting = True

    def watch() -> None:
        nonlocal peak
        while fitting:
            peak = max(peak, resident_gb())
            time.sleep(1.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.SamplingWarning)  # short runs need not mix
        start = time.perf_counter()
        model.fit(
            problem.frame,
            seed=speed.SEED,
            progress_bar=False,
            num_warmup=draws,
            num_samples=draws,
        )
        wall = time.perf_counter() - start
    fitting = False
    watcher.join()
    at_end = resident_gb()
    release_free_memory()
    chains = bs.ScalingModel.default_sampler_config["num_chains"]
    return {
        "released": chains * len(problem.frame) >= sampler.RELEASE_MEMORY_MIN_RUNS,
        "wall": wall,
        "before": before,
        "peak": max(peak, at_end),
        "at_end": at_end,
        "trimmed": resident_gb(),
    }


def main() -> None:
    """One row per group count, each from its own process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", type=int, default=[1000, 3000])
    parser.add_argument("--draws", type=int, default=60)
    parser.add_argument("--no-release", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    release = not args.no_release
    if args.child:
        print(json.dumps(measure(args.groups[0], args.draws, release)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import chinchilla_fit as cf

    print(f"## Resident memory of many-group fits, 4 chains x {args.draws} / {args.draws}\n")
    print(cf.environment(num_chains=4) + "\n")
    print(HEADER, flush=True)
    for groups in args.groups:
        command = [sys.executable, __file__, "--child", "--groups", str(groups)]
        command += ["--draws", str(args.draws)] + (["--no-release"] if not release else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        cells = [f"{figures[k]:.2f}" for k in ("before", "peak", "at_end", "trimmed")]
        print(
            f"| {groups} | {args.draws} | {'yes' if figures['released'] else 'no'} | "
            f"{figures['wall']:.1f} | " + " | ".join(cells) + " |",
            flush=True,
        )
    print(f"\nload average at end (1, 5, 15 min): {cf.load_average()}")


if __name__ == "__main__":
    main()
