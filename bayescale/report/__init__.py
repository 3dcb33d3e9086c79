"""Self-contained HTML and Markdown reports of a fit: diagnostics, model, parameters, figures."""

from __future__ import annotations

import base64
import html
import io
import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from bayescale.decisions import fitted_runs, law_curve
from bayescale.errors import SpecError
from bayescale.laws import Param, Prior
from bayescale.plots import plot_fit, plot_predicted_vs_observed
from bayescale.posterior import Posterior

FORMATS = (".html", ".md")


def _figures(posterior: Posterior, ci_prob: float) -> list[tuple[str, bytes]]:
    """PNG figures of the fit, with captions."""
    spec = posterior.spec
    out = []
    if len(spec.columns) == 1:
        column = next(iter(spec.columns.values()))
        runs = fitted_runs(posterior, ci_prob).rename(columns={"observed": spec.response})
        fig = plot_fit(
            runs,
            law_curve(posterior, ci_prob=ci_prob),
            x=column,
            y=spec.response,
            group=spec.group,
            ci_prob=ci_prob,
        )
        out.append((f"Runs and the law's {ci_prob:.0%} band, one decade past the data", fig))
    fig = plot_predicted_vs_observed(fitted_runs(posterior, ci_prob), y=spec.response)
    out.append((f"Observed against posterior predictive ({ci_prob:.0%} intervals)", fig))
    pngs = []
    for caption, fig in out:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        pngs.append((caption, buffer.getvalue()))
    return pngs


def _sections(posterior: Posterior, forecasts: pd.DataFrame | None, ci_prob: float) -> dict:
    """Every table and text of the report, as plain values (no markup)."""
    spec, meta = posterior.spec, posterior.meta
    law = spec.law_obj
    params = spec.params
    model = pd.DataFrame(
        {
            "pooling": [spec.pooling[n] if spec.group else "single group" for n in params],
            "prior": [_describe_prior(params[n], spec.priors[n]) for n in params],
            "why": [params[n].reason for n in params],
        },
        index=list(params),
    )
    groups = None
    if spec.group:
        counts = pd.Series(posterior.data.codes).value_counts().sort_index()
        groups = pd.DataFrame({"runs": counts.to_numpy()}, index=list(spec.labels))
    summary = posterior.summary(ci_prob)
    provenance = pd.DataFrame(
        {"value": [str(v) for v in {**meta["sampler"], **meta["versions"]}.values()]},
        index=list({**meta["sampler"], **meta["versions"]}),
    )
    return {
        "diagnostics": posterior.diagnostics.describe().splitlines(),
        "problems": posterior.diagnostics.problems,
        "model": [
            f"Law: {law.name}: {law.formula} ({law.source}).",
            f"Noise: {spec.noise} on log {spec.response}.",
            f"Scales: {', '.join(f'{k} = column {v!r}' for k, v in spec.columns.items())}; "
            + "reference scales "
            + ", ".join(f"{k} {v:.4g}" for k, v in spec.references.items())
            + ".",
            f"Data: {posterior.data.num_runs} runs"
            + (f" in {len(spec.labels)} groups of {spec.group!r}." if spec.group else "."),
        ],
        "model_table": model,
        "groups": groups,
        "summary": summary,
        "forecasts": forecasts,
        "provenance": provenance,
    }


def _describe_prior(param: Param, prior: Prior) -> str:
    if param.support == "positive" and param.lower:
        return (
            f"{param.lower:g} + LogNormal: median {param.lower + math.exp(prior.loc):.3g}, "
            f"sd of log(value - {param.lower:g}) {prior.scale:.3g}"
        )
    if param.support == "positive":
        return f"LogNormal: median {math.exp(prior.loc):.3g}, sd of log {prior.scale:.3g}"
    if param.support == "unit":
        return f"logit-Normal: loc {prior.loc:.3g}, scale {prior.scale:.3g}"
    return f"Normal: mean {prior.loc:.3g}, sd {prior.scale:.3g}"


def write_report(
    posterior: Posterior,
    path: str | os.PathLike[str],
    *,
    title: str = "bayescale fit",
    forecasts: pd.DataFrame | None = None,
    ci_prob: float = 0.9,
) -> Path:
    """Write a self-contained report of a fit: HTML (``.html``) or Markdown (``.md``).

    Every user-supplied string (title, group labels, column names) is escaped; figures are
    embedded (HTML) or written beside the file (Markdown).

    Parameters
    ----------
    posterior : Posterior
        The fit.
    path : str or path
        Output file; its suffix picks the format, one of {".html", ".md"}.
    title : str, default "bayescale fit"
        Report title.
    forecasts : DataFrame, optional
        A table to include, e.g. ``bs.forecast(...)`` joined to its ``at``.
    ci_prob : float, default 0.9
        Mass of the intervals in tables and figures.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise SpecError(f"report format is set by the suffix, one of {FORMATS}; got {path.name!r}.")
    sections = _sections(posterior, forecasts, ci_prob)
    figures = _figures(posterior, ci_prob)
    if path.suffix == ".html":
        text = _html(title, sections, figures)
    else:
        names = []
        for i, (_, png) in enumerate(figures):
            name = f"{path.stem}_figure{i + 1}.png"
            (path.parent / name).write_bytes(png)
            names.append(name)
        text = _markdown(title, sections, figures, names)
    path.write_text(text, encoding="utf-8")
    return path


def _html_table(frame: pd.DataFrame) -> str:
    return frame.to_html(escape=True, float_format=lambda v: f"{v:.4g}", border=0)


def _html(title: str, s: dict, figures: list[tuple[str, bytes]]) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{esc(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}"
        ".warn{background:#fde2e1;border-left:4px solid #c00;padding:4px 8px}</style>",
        f"</head><body><h1>{esc(title)}</h1>",
        "<h2>Sampling diagnostics</h2>",
    ]
    parts += [f'<p class="warn">WARNING: {esc(p)}</p>' for p in s["problems"]]
    parts.append(f"<p>{esc(s['diagnostics'][0])}</p>")
    parts.append("<h2>Model</h2>")
    parts += [f"<p>{esc(line)}</p>" for line in s["model"]]
    parts.append(_html_table(s["model_table"]))
    if s["groups"] is not None:
        parts += ["<h2>Groups</h2>", _html_table(s["groups"])]
    parts += ["<h2>Parameters (papers' convention)</h2>", _html_table(s["summary"])]
    for caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    if s["forecasts"] is not None:
        parts += ["<h2>Forecasts</h2>", _html_table(s["forecasts"])]
    parts += ["<h2>Provenance</h2>", _html_table(s["provenance"]), "</body></html>"]
    return "\n".join(parts)


def _md_escape(value: object) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return html.escape(text).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    header = ["", *frame.columns]
    lines = [
        "| " + " | ".join(_md_escape(h) for h in header) + " |",
        "|" + "---|" * len(header),
    ]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join(_md_escape(v) for v in [index, *row]) + " |")
    return "\n".join(lines)


def _markdown(title: str, s: dict, figures: list, names: list[str]) -> str:
    parts = [f"# {_md_escape(title)}", "", "## Sampling diagnostics", ""]
    parts += [f"> **WARNING:** {_md_escape(p)}\n" for p in s["problems"]]
    parts += [_md_escape(s["diagnostics"][0]), "", "## Model", ""]
    parts += [_md_escape(line) + "\n" for line in s["model"]]
    parts += [_md_table(s["model_table"]), ""]
    if s["groups"] is not None:
        parts += ["## Groups", "", _md_table(s["groups"]), ""]
    parts += ["## Parameters (papers' convention)", "", _md_table(s["summary"]), ""]
    for (caption, _), name in zip(figures, names, strict=True):
        parts += [f"![{_md_escape(caption)}]({name})", ""]
    if s["forecasts"] is not None:
        parts += ["## Forecasts", "", _md_table(s["forecasts"]), ""]
    parts += ["## Provenance", "", _md_table(s["provenance"]), ""]
    return "\n".join(parts)
