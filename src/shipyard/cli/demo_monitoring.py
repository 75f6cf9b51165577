"""The monitoring half of ``shipyard demo``: traffic, injected drift, detection, alert, retrain.

The served model answers real HTTP requests replayed from the biopsies; halfway through, the
clinic "recalibrates its scanner" and the size measurements (radius, perimeter, area) come in
larger. Labels arrive later through ``POST /models/cancer/feedback``. Then one monitor pass
finds the drift on exactly those features, raises the ``retrain`` rule's alert, re-runs the
pipeline on fresh data (the clinic's new, labelled scans added to its SQLite table) and lets
the promotion gate decide whether the new model takes ``production``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import httpx

    from shipyard.pipeline.monitoring import MonitorPass
    from shipyard.track.workspace import Workspace

RECALIBRATED = {
    "mean_radius": 1.4,
    "mean_perimeter": 1.4,
    "mean_area": 1.96,
    "worst_radius": 1.4,
    "worst_perimeter": 1.4,
    "worst_area": 1.96,
}
"""The injected drift: a new scanner reads the size features this much larger."""
REQUESTS = 600
FEEDBACK_BATCH = 200


def recalibrated(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as the recalibrated scanner would measure it."""
    return frame.with_columns(pl.col(c) * k for c, k in RECALIBRATED.items())


def traffic(biopsies: pl.DataFrame, *, seed: int = 7) -> pl.DataFrame:
    """``REQUESTS`` cases drawn from the biopsies; the second half after the recalibration."""
    picks = biopsies.sample(n=REQUESTS, with_replacement=True, seed=seed)
    half = REQUESTS // 2
    return pl.concat([picks.head(half), recalibrated(picks.tail(REQUESTS - half))])


def replay(
    client: httpx.Client, cases: pl.DataFrame, *, target: str, on_request: Any = None
) -> tuple[list[str], int]:
    """POST each case to the model (one request each, our own request id); return ids, errors."""
    features = cases.drop(target)
    ids: list[str] = []
    errors = 0
    for i, row in enumerate(features.iter_rows(named=True)):
        request_id = f"demo-{i:05d}"
        answer = client.post(
            "/models/cancer/predict", json=[row], headers={"x-request-id": request_id}
        )
        if answer.status_code == 200:
            ids.append(request_id)
        else:
            errors += 1
        if on_request is not None:
            on_request()
    return ids, errors


def send_feedback(client: httpx.Client, ids: list[str], labels: list[Any]) -> tuple[int, int]:
    """Ground truth for the answered requests, in batches; return (matched, unmatched)."""
    matched = unmatched = 0
    for start in range(0, len(ids), FEEDBACK_BATCH):
        batch = [
            {"request_id": i, "label": int(y)}
            for i, y in zip(
                ids[start : start + FEEDBACK_BATCH],
                labels[start : start + FEEDBACK_BATCH],
                strict=True,
            )
        ]
        receipt = client.post("/models/cancer/feedback", json=batch)
        receipt.raise_for_status()
        body = receipt.json()
        matched += int(body["matched"])
        unmatched += int(body["unmatched"])
    return matched, unmatched


def add_new_scans(database: Path, cases: pl.DataFrame, names: Mapping[str, str]) -> int:
    """The clinic's labelled scans from the new scanner, appended to its SQLite table.

    ``names`` maps our column names to the clinic's (its table names some columns its own way).
    """
    fresh = recalibrated(cases).rename(dict(names))
    insert_rows(database, "scans", fresh)
    return fresh.height


def insert_rows(database: Path, table: str, frame: pl.DataFrame) -> None:
    """Append ``frame`` to ``table`` of a SQLite file, in one transaction.

    The clinic's database is a source the demo writes, not the metadata store, so the standard
    library's driver does (SQLAlchemy stays inside ``shipyard.store``).
    """
    names = ", ".join(_quoted(c) for c in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        connection.executemany(
            f"INSERT INTO {_quoted(table)} ({names}) VALUES ({marks})",  # noqa: S608 - names quoted
            frame.rows(),
        )


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def monitor_once(workspace: Workspace, root: Path) -> MonitorPass:
    """One ``shipyard monitor run --once`` pass over the demo project."""
    from shipyard.cli.lifecycle_demo import demo_operator
    from shipyard.pipeline.monitoring import monitor_pass
    from shipyard.pipeline.project import load_project

    return monitor_pass(workspace, load_project(root), actor=demo_operator())
