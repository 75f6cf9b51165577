"""``shipyard monitor feedback``: load ground-truth labels from a file and show what they say.

The labels are validated whole (exit 2 naming the row on any bad one, nothing written), stored
next to the prediction log like the server's ``POST /models/{name}/feedback`` does, matched to
logged predictions by request id, and then every labelled prediction of the model is scored:
metrics with intervals per version and variant against the version's test metrics, and the
concept-drift detectors' verdicts. Registered on the ``monitor`` group in ``cli/monitor.py``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from shipyard.cli.context import console, open_workspace
from shipyard.cli.project import project_dir
from shipyard.cli.render import number

if TYPE_CHECKING:
    import polars as pl

    from shipyard.monitor.performance import ModelFacts
    from shipyard.monitor.signals import Observation


def feedback(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="Labels as CSV, JSON Lines or Parquet with request_id,label[,ts_ms].",
            exists=True,
            dir_okay=False,
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="The served model's name.")],
    log_dir: Annotated[
        Path | None,
        typer.Option(
            help="Prediction log folder (default .shipyard/predictions).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    window: Annotated[
        int | None, typer.Option(min=1, help="Metrics per window of this many labels.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Store feedback labels, join them to predictions and report performance and concept drift."""
    from shipyard.monitor.feedback import FeedbackStore, join_labels, read_feedback_file
    from shipyard.monitor.logfiles import read_prediction_log
    from shipyard.monitor.performance import concept_drift, performance_observations
    from shipyard.registry.registry import ModelRegistry, check_name

    # Like the server's 404: labels for a model the registry lacks would never be scored.
    check_name(model)
    with open_workspace(ctx) as workspace:
        ModelRegistry.for_workspace(workspace).get(model)
    labels = read_feedback_file(file)  # validated whole before anything is stored
    predictions = log_dir or project_dir(ctx) / ".shipyard" / "predictions"
    store = FeedbackStore.beside(predictions, match_lookback_ms=None)  # old labels match too
    receipt = store.add(model, labels)
    log = read_prediction_log(predictions).filter(_model_is(model))
    joined = join_labels(log, store.labels(model))
    observations: list[Observation] = []
    skipped: dict[int, str] = {}
    for version, part in _by_version(joined):
        facts, why = _facts(ctx, model, version)
        if facts is None:
            skipped[version] = why
            continue
        observations += performance_observations(
            part, model=model, facts=facts, window_labels=window
        )
        observations += concept_drift(part, model=model, facts=facts)
    if as_json:
        payload = {
            "receipt": receipt.to_dict(),
            "observations": [_plain(asdict(o)) for o in observations],
            "skipped_versions": {str(v): why for v, why in skipped.items()},
        }
        typer.echo(json.dumps(payload, allow_nan=False))
        return
    console.print(
        f"{receipt.accepted} label(s) stored for {escape(model)}: {receipt.matched} matched a "
        f"logged prediction, {receipt.unmatched} did not (kept; they join once the prediction "
        f"is logged), {receipt.repeated} repeated a request id (the last one counts)"
    )
    if receipt.unmatched_ids:
        console.print("unmatched: " + escape(", ".join(receipt.unmatched_ids[:10])))
    for version, why in skipped.items():
        console.print(f"[yellow]version {version}: no metrics ({escape(why)})[/]")
    if observations:
        console.print(_table(observations))
    elif not skipped:
        console.print("no labelled predictions yet")


def _model_is(model: str) -> pl.Expr:
    import polars as pl

    return pl.col("model") == model


def _by_version(joined: pl.DataFrame) -> list[tuple[int, pl.DataFrame]]:
    return [(int(key[0]), part) for key, part in joined.group_by("version", maintain_order=True)]


def _facts(ctx: typer.Context, model: str, version: int) -> tuple[ModelFacts | None, str]:
    """The version's task and test metrics from the registry, or why they are unavailable."""
    from shipyard.core.errors import ShipyardError
    from shipyard.monitor.performance import ModelFacts
    from shipyard.registry.registry import ModelRegistry

    try:
        with open_workspace(ctx) as workspace:
            bundle = ModelRegistry.for_workspace(workspace).load(f"{model}:{version}")
    except ShipyardError as e:
        return None, f"its bundle did not load: {e}"
    return ModelFacts.from_manifest(bundle.manifest), ""


def _table(observations: list[Observation]) -> Table:
    table = Table("version", "variant", "statistic", "value", "interval", "n", "baseline", "worse")
    for o in observations:
        if o.kind == "concept":
            fired = o.value == 1.0
            value = f"fired at label {o.detail['label_index']}" if fired else "quiet"
            interval, n = "", str(o.detail.get("labels", ""))
        else:
            value = number(o.value)
            low, high = o.detail.get("low"), o.detail.get("high")
            interval = "-" if low is None else f"{number(low)} .. {number(high)}"
            n = str(o.detail["n"])
        table.add_row(
            str(o.version),
            escape(o.variant or "-"),
            f"{o.kind}:{o.statistic}",
            value,
            interval,
            n,
            number(o.threshold),
            "[red]yes[/]" if o.breached else "no",
        )
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
