"""Erasure in the prediction log and its feedback labels (``shipyard.privacy.erasure``'s holder).

A logged answer holds a subject when its request id holds the value (``Subject.in_text``), or
when the request's column named by the subject has the value in one of its rows
(``Subject.is_value``), or when another string of the request does (``Subject.in_json``):

* a request that scored only the subject's rows is removed, and so are the feedback labels of
  its request id (the label is the truth about that person's answer);
* a request that scored several rows keeps its other rows: the subject's rows are cut from
  every input column, from the predictions and from the probabilities, and ``prediction`` and
  ``probability`` are taken again from the first row left (``anomaly_score``, a number about
  the whole request, stays). Where the answer's arrays do not line up with the inputs, or the
  value is elsewhere in the request, the whole row goes.

Labels themselves are not searched (they are the model's classes; a subject ``1`` would match
every positive label): a label goes with its request, or when its request id holds the value.
Each part file that held the subject is replaced atomically (``replace_part_atomic``); parts
that did not are never opened for writing. Labels go first, then answers, so an interrupted
erasure that is run again still finds the request ids whose labels must go.

A running server may hold the subject's answer in its queue: erase after the server has flushed
(it writes at least every ``flush_interval_s``) or stopped, or run the erasure again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from shipyard.monitor.logfiles import replace_part_atomic
from shipyard.privacy.holders import HolderResult

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from shipyard.privacy.subject import Subject

DEFAULT_LOG_DIR = ".shipyard/predictions"
"""Where ``shipyard serve`` logs predictions, relative to the project folder."""
_TEXT_COLUMNS = ("request_id", "inputs_json", "outputs_json", "prediction")


@dataclass(frozen=True)
class LogFolder:
    """A prediction log folder and the feedback folder beside it.

    Attributes:
        predictions: The log's hive folder (``date=*/hour=*/part-*.parquet``).
        feedback: The labels' folder (``date=*/part-*.parquet``), ``<predictions>/../feedback``.
    """

    predictions: Path
    feedback: Path

    @classmethod
    def at(cls, predictions: Path) -> LogFolder:
        """The log at ``predictions`` with its feedback where the server keeps it."""
        return cls(predictions, predictions.parent / "feedback")

    def erase(self, subject: Subject, *, dry_run: bool) -> Sequence[HolderResult]:
        """Remove (or count) the subject's answers, then their labels; see the module docstring."""
        answers = [(path, _erase_answers(path, subject)) for path in _parts(self.predictions)]
        changed = [(path, done) for path, done in answers if done is not None]
        gone = {key for _, done in changed for key in done.removed_requests}
        labels = [(path, _erase_labels(path, subject, gone)) for path in _parts(self.feedback)]
        labels_changed = [(path, frame, n) for path, (frame, n) in labels if n]
        if not dry_run:
            for path, frame, _ in labels_changed:
                replace_part_atomic(path, frame)
            for path, done in changed:
                replace_part_atomic(path, done.frame)
        return (
            HolderResult(
                "prediction_log",
                str(self.predictions),
                files=len(changed),
                rows=sum(d.rows_removed for _, d in changed),
                rows_trimmed=sum(d.rows_trimmed for _, d in changed),
            ),
            HolderResult(
                "feedback",
                str(self.feedback),
                files=len(labels_changed),
                rows=sum(n for _, _, n in labels_changed),
            ),
        )


def log_holders(project_dir: Path, log_dirs: Iterable[Path] = ()) -> list[LogFolder]:
    """The log folders of a project: the default one and any ``--log-dir`` a server used.

    Folders that do not exist are left out (a project that never served has no log).
    """
    roots = [project_dir / DEFAULT_LOG_DIR, *log_dirs]
    unique = list(dict.fromkeys(r.resolve() for r in roots))
    return [LogFolder.at(root) for root in unique if root.is_dir()]


@dataclass(frozen=True)
class _Answers:
    frame: pl.DataFrame
    rows_removed: int
    rows_trimmed: int
    removed_requests: frozenset[tuple[str, str]]


def _parts(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def _erase_answers(path: Path, subject: Subject) -> _Answers | None:
    """The part without the subject's answers; None when it holds none."""
    frame = pl.read_parquet(path)
    present = [c for c in _TEXT_COLUMNS if c in frame.columns]
    literal = pl.any_horizontal(
        pl.col(c).str.contains(candidate, literal=True).fill_null(False)
        for c in present
        for candidate in subject.candidates
    )
    suspects = frame.with_row_index("_i").filter(literal)
    if not suspects.height:
        return None
    replaced: dict[int, dict[str, Any] | None] = {}
    trimmed = 0
    removed: set[tuple[str, str]] = set()
    for row in suspects.iter_rows(named=True):
        new = _without_subject(row, subject)
        if new is row:
            continue
        replaced[row["_i"]] = new
        if new is None:
            removed.add((row["model"], row["request_id"]))
        else:
            trimmed += 1
    if not replaced:
        return None
    rows = []
    for i, row in enumerate(frame.iter_rows(named=True)):
        if i not in replaced:
            rows.append(row)
        elif (new := replaced[i]) is not None:
            rows.append({k: v for k, v in new.items() if k != "_i"})
    kept = pl.DataFrame(rows, schema=frame.schema, orient="row")
    return _Answers(kept, len(replaced) - trimmed, trimmed, frozenset(removed))


def _without_subject(row: dict[str, Any], subject: Subject) -> dict[str, Any] | None:
    """``row`` unchanged (the same object) if it does not hold the subject; None to drop it."""
    if subject.in_text(row.get("request_id")) or subject.in_text(row.get("prediction")):
        return None
    try:
        inputs = orjson.loads(row.get("inputs_json") or "{}")
        outputs = orjson.loads(row.get("outputs_json") or "{}")
    except orjson.JSONDecodeError:  # not ours to judge: it held the text, it goes
        return None if _raw_holds(row, subject) else row
    if not isinstance(inputs, dict):
        return None if subject.in_json(inputs) else row
    cells = inputs.get(subject.column)
    hits = (
        [i for i, v in enumerate(cells) if subject.is_value(v)] if isinstance(cells, list) else []
    )
    if not hits:
        return None if subject.in_json(inputs) or subject.in_json(outputs) else row
    assert isinstance(cells, list)
    trimmed = _trim(inputs, outputs, set(hits), len(cells))
    if trimmed is None:
        return None
    inputs, outputs = trimmed
    if subject.in_json(inputs) or subject.in_json(outputs):
        return None  # the value is in another field too
    labels, probabilities = outputs.get("predictions"), outputs.get("probabilities")
    first = labels[0] if isinstance(labels, list) and labels else None
    return {
        **row,
        "inputs_json": orjson.dumps(inputs).decode(),
        "outputs_json": orjson.dumps(outputs).decode(),
        "prediction": None if first is None else str(first),
        "probability": float(probabilities[0][-1]) if probabilities else None,
    }


def _trim(
    inputs: dict[str, Any], outputs: Any, hits: set[int], n: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Cut rows ``hits`` out of every per-row array; None when nothing is left or they differ."""
    if len(hits) >= n or not isinstance(outputs, dict):
        return None
    keep = [i for i in range(n) if i not in hits]
    new_inputs: dict[str, Any] = {}
    for name, values in inputs.items():
        if not isinstance(values, list) or len(values) != n:
            return None
        new_inputs[name] = [values[i] for i in keep]
    new_outputs: dict[str, Any] = {}
    for name, values in outputs.items():
        if values is None:
            new_outputs[name] = None
        elif isinstance(values, list) and len(values) == n:
            new_outputs[name] = [values[i] for i in keep]
        else:
            return None
    return new_inputs, new_outputs


def _raw_holds(row: dict[str, Any], subject: Subject) -> bool:
    return any(subject.in_text(row.get(c)) for c in _TEXT_COLUMNS)


def _erase_labels(
    path: Path, subject: Subject, requests: set[tuple[str, str]]
) -> tuple[pl.DataFrame, int]:
    """The labels part without the subject's labels, and how many went."""
    frame = pl.read_parquet(path)
    if not frame.height:
        return frame, 0
    ordered = sorted(requests)
    pairs = pl.DataFrame(
        {"model": [m for m, _ in ordered], "request_id": [r for _, r in ordered]},
        schema={"model": pl.String, "request_id": pl.String},
    )
    marked = pairs.with_columns(pl.lit(True).alias("_gone"))
    keyed = frame.join(marked, how="left", on=["model", "request_id"])
    gone = pl.col("_gone").fill_null(False) | subject.text_match("request_id")
    kept = keyed.filter(~gone).drop("_gone")
    return kept.select(frame.columns), frame.height - kept.height
