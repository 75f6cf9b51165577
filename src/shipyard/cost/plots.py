"""Cost figures as PNG files: spend by group, and quality against cost for an experiment.

Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas (no pyplot, no global
state), as in ``shipyard.train.plots``; each function writes one PNG and returns its path.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from decimal import Decimal
    from pathlib import Path

    from shipyard.cost.tradeoffs import Candidate


def save_png(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` through a temporary file.

    Raises:
        InvalidArgument: ``path`` is a folder, or its folder cannot be created or written; no
            temporary file is left behind.
    """
    if path.is_dir():
        raise InvalidArgument(f"plot path {path} is a folder; give a file name such as cost.png")
    FigureCanvasAgg(figure)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(tmp, format="png", dpi=110)
        tmp.replace(path)  # atomic: a reader never sees half a PNG
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InvalidArgument(
            f"cannot write the plot to {path}: {e.strerror or e}; choose another --plot"
        ) from e
    return path


def spend_chart(costs: Mapping[str, Decimal], *, title: str, currency: str, path: Path) -> Path:
    """Write a horizontal bar chart of cost per group."""
    figure = Figure(figsize=(7, 0.4 * max(len(costs), 3) + 1.2))
    ax = figure.add_subplot()
    names = list(costs)
    ax.barh(names, [float(costs[n]) for n in names], color="#4c72b0")
    ax.invert_yaxis()
    ax.set_xlabel(currency)
    ax.set_title(title)
    figure.tight_layout()
    return save_png(figure, path)


def tradeoff_chart(
    found: Sequence[Candidate],
    front: Sequence[Candidate],
    curve: Sequence[float],
    *,
    metric: str,
    currency: str,
    path: Path,
) -> Path:
    """Write quality vs cost per 1,000 predictions (Pareto front joined) and best-so-far."""
    figure = Figure(figsize=(11, 4.2))
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    most = max((float(c.training_usd) for c in found), default=0.0) or 1.0
    for estimator in sorted({c.estimator for c in found}):
        mine = [c for c in found if c.estimator == estimator and c.per_thousand_usd is not None]
        left.scatter(
            [float(c.per_thousand_usd or 0) for c in mine],
            [c.score for c in mine],
            s=[30 + 300 * float(c.training_usd) / most for c in mine],
            alpha=0.7,
            label=estimator,
        )
    edge = sorted((c for c in front if c.per_thousand_usd is not None), key=lambda c: c.score)
    left.plot(
        [float(c.per_thousand_usd or 0) for c in edge],
        [c.score for c in edge],
        color="black",
        lw=1,
        label="Pareto front",
    )
    left.set_xscale("log")
    left.set_xlabel(f"{currency} per 1,000 predictions (marker size: training cost)")
    left.set_ylabel(f"cv {metric}")
    left.legend(fontsize=8)
    left.set_title("Quality vs serving cost")
    right.plot(range(1, len(curve) + 1), curve, marker="o", ms=3)
    right.set_xlabel("tuning trials")
    right.set_ylabel(f"best cv {metric} so far")
    right.set_title("Learning curve: returns per trial")
    figure.tight_layout()
    return save_png(figure, path)
