"""Command-line interface: a thin shell over the public functions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

DEMO_TARGET = 1.95
DEMO_AT = {"params": 7e10, "tokens": 1.4e12}
DEMO_FLOPS = 5.76e23


def _parse_pairs(text: str, option: str) -> dict[str, str]:
    pairs = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise _usage(f"{option} expects name=value pairs separated by commas; got {text!r}.")
        pairs[key.strip()] = value.strip()
    return pairs


def _parse_value(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def _print_fit(post, ci_prob: float) -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(post.summary(ci_prob=ci_prob).to_string(float_format=lambda v: f"{v:.4g}"))
    print()
    print("Diagnostics: " + post.diagnostics.describe())


def _cmd_demo(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayescale as bs

    frame = bs.datasets.load("chinchilla")
    frame = frame[~frame["besiroglu_excluded"]]
    model = bs.ScalingModel("chinchilla", noise=args.noise)
    print(
        f"Fitting L(N, D) = E + A N^-alpha + B D^-beta to {len(frame)} Chinchilla runs "
        f"(Besiroglu et al. 2024 reconstruction; 5 flagged runs excluded), noise={args.noise!r}."
    )
    post = model.fit(frame, seed=args.seed)
    print()
    _print_fit(post, 0.95)
    at = pd.DataFrame([DEMO_AT])
    fc = bs.forecast(post, at, ci_prob=0.9)
    prob = bs.prob_reached(post, args.target, at)
    print()
    print("Forecast for Chinchilla itself (N = 7e10 parameters, D = 1.4e12 tokens):")
    row = fc.iloc[0]
    print(
        f"  loss median {row['median']:.3f}, 90% interval [{row['lower']:.3f}, {row['upper']:.3f}]"
    )
    print(f"  P(loss <= {args.target}) = {prob[0]:.3f}")
    alloc = bs.optimal_allocation(post, DEMO_FLOPS, ci_prob=0.9).iloc[0]
    print(f"Compute-optimal allocation at {DEMO_FLOPS:.3g} FLOPs (C = 6 N D):")
    print(
        f"  N {alloc['params_median']:.3g} [{alloc['params_lower']:.3g}, "
        f"{alloc['params_upper']:.3g}], D {alloc['tokens_median']:.3g} "
        f"[{alloc['tokens_lower']:.3g}, {alloc['tokens_upper']:.3g}], tokens per parameter "
        f"{alloc['tokens_per_param_median']:.1f} [{alloc['tokens_per_param_lower']:.1f}, "
        f"{alloc['tokens_per_param_upper']:.1f}] (90% intervals)"
    )
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    import bayescale as bs
    from bayescale.data import read_table

    frame = read_table(args.data)
    pooling = _parse_pairs(args.pooling, "--pooling") if args.pooling else None
    model = bs.ScalingModel(args.law, x=args.x, group=args.group, pooling=pooling, noise=args.noise)
    config = {
        "num_warmup": args.num_warmup,
        "num_samples": args.num_samples,
        "num_chains": args.num_chains,
        "warmup": args.warmup,
    }
    post = model.fit(frame, seed=args.seed, **config)
    path = post.save(args.out)
    _print_fit(post, 0.9)
    print(f"\nSaved to {path}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    import bayescale as bs

    post = bs.load(args.fit)
    print(post)
    _print_fit(post, args.ci_prob)
    return 0


def _cmd_forecast(args: argparse.Namespace) -> int:
    import pandas as pd

    import bayescale as bs

    post = bs.load(args.fit)
    rows = [{k: _parse_value(v) for k, v in _parse_pairs(a, "--at").items()} for a in args.at]
    at = pd.DataFrame(rows)
    table = bs.forecast(post, at, ci_prob=args.ci_prob, kind=args.kind)
    table = pd.concat([at, table], axis=1)
    if args.target is not None:
        table["prob_reached"] = bs.prob_reached(post, args.target, at, kind=args.kind)
    if args.json:
        out = {
            "ci_prob": args.ci_prob,
            "kind": args.kind,
            "target": args.target,
            "rows": table.to_dict(orient="records"),
            "diagnostics_ok": post.diagnostics.ok,
            "warnings": post.diagnostics.problems,
        }
        print(json.dumps(out, indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        for problem in post.diagnostics.problems:
            print("WARNING: " + problem)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import bayescale as bs
    from bayescale.report import write_report

    post = bs.load(args.fit)
    path = write_report(post, args.out, title=args.title or f"bayescale fit: {args.fit}")
    print(f"Wrote {path}")
    for problem in post.diagnostics.problems:
        print("WARNING: " + problem)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the ``bayescale`` argument parser."""
    from bayescale.inference import WARMUPS
    from bayescale.laws import LAWS
    from bayescale.model import ScalingModel
    from bayescale.noise import NOISES

    parser = argparse.ArgumentParser(
        prog="bayescale", description="Bayesian scaling laws: fit, forecast, decide."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")

    demo = commands.add_parser("demo", help="fit Chinchilla's L(N, D) to the 240 published runs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--noise", choices=NOISES, default="student_t")
    demo.add_argument("--target", type=float, default=DEMO_TARGET, help="target loss (nats)")
    demo.set_defaults(run=_cmd_demo)

    fit = commands.add_parser("fit", help="fit a law to a CSV of runs and save the posterior")
    fit.add_argument("data", help="CSV file, one row per run")
    fit.add_argument("--law", required=True, help=f"one of {sorted(LAWS)}")
    fit.add_argument("--x", help="scale column of a single-scale law (e.g. flops)")
    fit.add_argument("--group", help="group column to pool across (task, dataset, ...)")
    fit.add_argument("--pooling", help="e.g. alpha=shared,E=partial,A=independent")
    fit.add_argument("--noise", choices=NOISES, default="student_t")
    fit.add_argument("--seed", type=int, default=0)
    defaults = ScalingModel.default_sampler_config
    fit.add_argument("--num-warmup", type=int, default=defaults["num_warmup"])
    fit.add_argument("--num-samples", type=int, default=defaults["num_samples"])
    fit.add_argument("--num-chains", type=int, default=defaults["num_chains"])
    fit.add_argument(
        "--warmup",
        choices=WARMUPS,
        default=defaults["warmup"],
        help=f"laplace: start from a Laplace approximation; standard: NumPyro's "
        f"(default {defaults['warmup']})",
    )
    fit.add_argument("--out", required=True, help="path of the netCDF file to write")
    fit.set_defaults(run=_cmd_fit)

    summary = commands.add_parser("summary", help="print the posterior summary of a saved fit")
    summary.add_argument("fit", help="netCDF file written by 'bayescale fit'")
    summary.add_argument("--ci-prob", type=float, default=0.9)
    summary.set_defaults(run=_cmd_summary)

    forecast = commands.add_parser("forecast", help="forecast a saved fit at new scales")
    forecast.add_argument("fit", help="netCDF file written by 'bayescale fit'")
    forecast.add_argument(
        "--at",
        action="append",
        required=True,
        help="scales of one point, e.g. params=7e10,tokens=1.4e12 (repeat for more points)",
    )
    forecast.add_argument("--target", type=float, help="also print P(response reaches target)")
    forecast.add_argument("--ci-prob", type=float, default=0.9)
    forecast.add_argument("--kind", choices=("predictive", "mean"), default="predictive")
    forecast.add_argument("--json", action="store_true", help="print JSON instead of a table")
    forecast.set_defaults(run=_cmd_forecast)

    report = commands.add_parser("report", help="write an HTML or Markdown report of a saved fit")
    report.add_argument("fit", help="netCDF file written by 'bayescale fit'")
    report.add_argument("--out", required=True, help="report path ending in .html or .md")
    report.add_argument("--title", help="report title")
    report.set_defaults(run=_cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input, with one clear message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from bayescale import __version__

        print(f"bayescale {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from bayescale.errors import BayescaleError

    try:
        return args.run(args)
    except (BayescaleError, _UsageError) as err:
        print(f"bayescale {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
