"""The learning-curve figure: test score (mean ± std over repeats) and cost per fit, by rows.

The x axis is the number of training rows on a log-2 scale, so equal steps are doublings and a
flattening curve reads as diminishing returns per doubling. Drawn and written as
``shipyard.cost.plots`` draws and writes: a ``Figure`` on the Agg canvas (no pyplot, no global
state), written atomically by that module's writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

# The cost figures' writer: atomic, and an unwritable path or a folder is one clear error.
from shipyard.cost.plots import save_png

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.train.learning_curve import LearningCurve


def learning_curve_chart(curve: LearningCurve, *, currency: str, path: Path) -> Path:
    """Write the curve of ``curve`` as a PNG at ``path`` and return the path."""
    figure = Figure(figsize=(7, 4.2))
    ax = figure.add_subplot()
    shown = [p for p in curve.points if p.mean is not None]
    rows = [p.rows for p in shown]
    ax.errorbar(
        rows,
        [p.mean or 0.0 for p in shown],
        yerr=[p.std or 0.0 for p in shown],
        marker="o",
        capsize=3,
        color="#4c72b0",
        label=f"test {curve.metric} (mean ± std, {curve.repeats} repeats)",
    )
    for p in shown:
        ax.annotate(
            f"{p.fraction:.0%}",
            (p.rows, p.mean or 0.0),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(rows, [f"{r:,}" for r in rows])
    ax.minorticks_off()
    ax.set_xlabel("training rows (log 2 scale)")
    ax.set_ylabel(f"test {curve.metric}")
    ax.set_title(f"Learning curve: {curve.candidate.estimator}, {curve.test_rows:,} test rows")
    handles, labels = ax.get_legend_handles_labels()
    priced = [p for p in curve.points if p.cost_usd is not None]
    if priced:
        cost_ax = ax.twinx()
        (line,) = cost_ax.plot(
            [p.rows for p in priced],
            [float(p.cost_usd or 0) for p in priced],
            linestyle="--",
            marker="s",
            color="#dd8452",
            label=f"cost per fit ({currency})",
        )
        cost_ax.set_ylim(bottom=0)  # from zero: a flat cost reads flat, not as noise blown up
        cost_ax.set_ylabel(f"{currency} per fit")
        handles.append(line)
        labels.append(line.get_label())
    ax.legend(handles, labels, loc="lower right", fontsize=8)
    figure.tight_layout()
    return save_png(figure, path)
