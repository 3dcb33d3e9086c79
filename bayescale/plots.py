"""Figures: each function draws numbers it is given (from `bayescale.decisions`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def plot_fit(
    runs: pd.DataFrame,
    curve: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str | None = None,
    ci_prob: float = 0.9,
) -> Figure:
    """Draw observed runs and the posterior band of the law along one scale.

    Parameters
    ----------
    runs : DataFrame
        Observed runs: columns ``x``, ``y`` (and ``group``).
    curve : DataFrame
        Columns ``x``, ``median``, ``lower``, ``upper`` (and ``group``), e.g. from
        `bayescale.forecast` on a grid.
    x, y : str
        Scale and response columns.
    group : str, optional
        Group column: one colour per group.
    ci_prob : float, default 0.9
        Mass of the band, for the legend.

    Returns
    -------
    Figure
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    groups = [None] if group is None else list(dict.fromkeys(curve[group]))
    for i, label in enumerate(groups):
        colour = f"C{i % 10}"
        sel_runs = runs if label is None else runs[runs[group] == label]
        sel_curve = curve if label is None else curve[curve[group] == label]
        name = "" if label is None else f"{label}: "
        ax.fill_between(
            sel_curve[x],
            sel_curve["lower"],
            sel_curve["upper"],
            color=colour,
            alpha=0.25,
            label=f"{name}{ci_prob:.0%} interval",
        )
        ax.plot(sel_curve[x], sel_curve["median"], color=colour, label=f"{name}median")
        ax.scatter(sel_runs[x], sel_runs[y], color=colour, s=12, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_predicted_vs_observed(table: pd.DataFrame, *, y: str, ci_prob: float = 0.9) -> Figure:
    """Draw each run's observed response against its posterior predictive interval.

    Parameters
    ----------
    table : DataFrame
        Columns ``observed``, ``median``, ``lower``, ``upper`` (one row per run).
    y : str
        Response name, for the axis labels.
    ci_prob : float, default 0.9
        Mass of the intervals, for the label.

    Returns
    -------
    Figure
    """
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.errorbar(
        table["median"],
        table["observed"],
        xerr=[table["median"] - table["lower"], table["upper"] - table["median"]],
        fmt="o",
        ms=3,
        alpha=0.6,
        label=f"posterior predictive median, {ci_prob:.0%} interval",
    )
    low = min(table["lower"].min(), table["observed"].min())
    high = max(table["upper"].max(), table["observed"].max())
    ax.plot([low, high], [low, high], color="k", lw=0.8)
    ax.set_xlabel(f"predicted {y}")
    ax.set_ylabel(f"observed {y}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
