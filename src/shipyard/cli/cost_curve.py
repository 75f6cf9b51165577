"""``shipyard cost curve``: test quality against the share of training data, and its price.

The sibling of ``shipyard cost advise`` (quality against tuning trials): together they show
where more data or more search stops paying (issue 8). The work is in
``shipyard.pipeline.curves``; this module parses the options and draws the table.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.project import project_dir

if TYPE_CHECKING:
    from shipyard.pipeline.curves import CurveOutcome

_DEFAULT_FRACTIONS = "0.1,0.25,0.5,0.75,1.0"


def curve(
    ctx: typer.Context,
    fractions: Annotated[
        str, typer.Option(help="Shares of the training rows, increasing, each in (0, 1].")
    ] = _DEFAULT_FRACTIONS,
    repeats: Annotated[
        int, typer.Option(min=1, max=20, help="Subsets drawn per share (mean ± std over them).")
    ] = 3,
    dataset: Annotated[
        str | None,
        typer.Option(help="Dataset id or name (default: what the next training would use)."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="PNG path (default .shipyard/reports/curve-<run>.png).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Refit on growing shares of the training rows: test score, CPU and cost per share."""
    from shipyard.pipeline.curves import project_curve
    from shipyard.pipeline.project import load_project
    from shipyard.train.learning_curve import parse_fractions

    shares = parse_fractions(fractions)  # bad input exits 2 before anything is opened
    project = load_project(project_dir(ctx))
    with open_workspace(ctx) as workspace:
        outcome = project_curve(
            workspace, project, fractions=shares, repeats=repeats, dataset=dataset, plot=plot
        )
    if as_json:
        sys.stdout.write(json.dumps(outcome.to_dict(), default=str, indent=2) + "\n")
        return
    _print(outcome)


def _print(outcome: CurveOutcome) -> None:
    c = outcome.curve
    table = Table(
        title=f"Learning curve: {escape(c.candidate.estimator)} ({escape(outcome.source)}), "
        f"test {c.metric} on {c.test_rows:,} rows"
    )
    columns = ("fraction", "rows", c.metric, "gain/doubling", "CPU s", outcome.currency)
    for column in columns:
        table.add_column(column, justify="right")
    gains = {g.to_fraction: g for g in c.gains()}
    for p in c.points:
        gain = gains.get(p.fraction)
        table.add_row(
            f"{p.fraction:.0%}",
            f"{p.rows:,}",
            "-" if p.mean is None else f"{p.mean:.4f} ± {p.std or 0.0:.4f}",
            "-" if gain is None or gain.per_doubling is None else f"{gain.per_doubling:+.4f}",
            f"{p.mean_cpu_seconds:.3f}",
            _money(p.cost_usd),
        )
    console.print(table)
    console.print(escape(c.summary()), highlight=False)
    i = outcome.active.instance
    console.print(
        escape(
            f"{c.repeats} repeat(s), seed {c.seed}, dataset {outcome.dataset_id[:12]}; cost per "
            f"fit = CPU s / 3600 x {outcome.active.hourly} {outcome.currency}/h / {i.vcpus} vCPU "
            f"({i.name} {outcome.active.purchase}); run {outcome.run_id[:12]}"
        ),
        highlight=False,
    )
    console.print(f"plot: {escape(str(outcome.plot))}", highlight=False)


def _money(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3e}" if 0 < abs(value) < Decimal("0.000001") else f"{value:.6f}"
