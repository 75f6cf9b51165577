"""Feedback labels: the ground truth that arrives after a prediction, kept and joined to it.

Labels come over HTTP (``POST /models/{name}/feedback``) or from a file
(``shipyard monitor feedback``) as ``request_id`` + ``label`` (+ optional ``ts_ms``, when the
truth was observed). They are validated whole before anything is written, then stored as new
Parquet parts next to the prediction log, ``<root>/date=YYYY-MM-DD/part-<uuid>.parquet`` by
the day they were received, each written atomically (``write_part_atomic``). Nothing is ever
rewritten in place, so a label sent twice for the same request is kept twice on disk and the
*last received* one wins when labels are read (within one batch, the later item wins). A label
whose request id is not (yet) in the prediction log is kept too and only reported as unmatched:
the prediction may sit in another worker's unflushed queue, and the join is redone each time
performance is computed.

Labels are stored as text, as given (``true``/``false`` for booleans); the performance monitor
compares them with the logged predictions after canonicalizing both (numbers by value,
booleans case-insensitively).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.monitor.logfiles import read_prediction_log, write_part_atomic

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

FEEDBACK_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "model": pl.String(),
    "label": pl.String(),
    "ts_ms": pl.Int64(),
    "received_ms": pl.Int64(),
    "seq": pl.Int64(),
}
"""Columns of every feedback part. ``received_ms`` (strictly increasing per store) and ``seq``
(the item's place in its batch) order labels for "last wins"."""

MAX_LABELS_PER_REQUEST = 10_000
MAX_LABELS_PER_FILE = 5_000_000
MAX_ID_CHARS = 256
MAX_LABEL_CHARS = 1024
MAX_FUTURE_MS = 24 * 3600 * 1000  # a label "observed" more than a day ahead is a clock bug
MATCH_LOOKBACK_MS = 30 * 24 * 3600 * 1000
_FIELDS = ("request_id", "label", "ts_ms")
_UNMATCHED_SHOWN = 100


@dataclass(frozen=True)
class FeedbackReceipt:
    """What one batch of labels did.

    Attributes:
        accepted: Labels stored (one per distinct request id in the batch).
        matched: Of those, labels whose request id is in the prediction log.
        unmatched: Labels kept without a logged prediction (yet).
        repeated: Items in the batch that repeated an earlier item's request id (last won).
        unmatched_ids: Up to 100 unmatched request ids, for the caller to check.
    """

    accepted: int
    matched: int
    unmatched: int
    repeated: int
    unmatched_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the receipt as JSON-safe values."""
        return {
            "accepted": self.accepted,
            "matched": self.matched,
            "unmatched": self.unmatched,
            "repeated": self.repeated,
            "unmatched_ids": self.unmatched_ids,
        }


def label_text(value: Any) -> str:
    """The stored text of a label value: booleans ``true``/``false``, numbers and text as is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_feedback_json(body: Any, *, max_labels: int = MAX_LABELS_PER_REQUEST) -> pl.DataFrame:
    """Validate a JSON body (one object or a list of them) into a frame of labels.

    Args:
        body: The parsed JSON: ``{"request_id": ..., "label": ..., "ts_ms": ...}`` or a list.
        max_labels: Most items accepted.

    Returns:
        Columns ``request_id``, ``label`` (text), ``ts_ms`` (null when not given).

    Raises:
        InvalidData: Not an object or list, empty, too many items, or an item with a missing,
            unknown or wrongly typed field (the message names the item).
    """
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidData("feedback must be a JSON object or a list of objects")
    if not items:
        raise InvalidData("feedback is an empty list; send at least one label")
    if len(items) > max_labels:
        raise InvalidData(f"{len(items)} labels in one request; send at most {max_labels}")
    ids, labels, stamps = [], [], []
    for i, item in enumerate(items):
        request_id, label, ts_ms = _item(i, item)
        ids.append(request_id)
        labels.append(label)
        stamps.append(ts_ms)
    return _frame(ids, labels, stamps)


def _item(i: int, item: Any) -> tuple[str, str, int | None]:
    where = f"feedback item {i}"
    if not isinstance(item, dict):
        raise InvalidData(f"{where} is not an object with request_id and label")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise InvalidData(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    missing = [f for f in ("request_id", "label") if f not in item]
    if missing:
        raise InvalidData(f"{where}: missing {' and '.join(missing)}")
    request_id = _request_id(item["request_id"], where)
    label = item["label"]
    if isinstance(label, dict | list) or label is None:
        raise InvalidData(f"{where}: label must be a string, number or boolean")
    text = label_text(label)
    _check_label_text(text, where)
    ts_ms = item.get("ts_ms")
    if ts_ms is not None and (not isinstance(ts_ms, int) or isinstance(ts_ms, bool) or ts_ms < 0):
        raise InvalidData(f"{where}: ts_ms must be epoch milliseconds (an integer >= 0)")
    return request_id, text, ts_ms


def _request_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidData(f"{where}: request_id must be a non-empty string")
    if len(value) > MAX_ID_CHARS or any(ord(c) < 32 for c in value):
        raise InvalidData(
            f"{where}: request_id must be at most {MAX_ID_CHARS} printable characters"
        )
    return value


def _check_label_text(text: str, where: str) -> None:
    if not text or len(text) > MAX_LABEL_CHARS or "\x00" in text:
        raise InvalidData(f"{where}: label must be 1 to {MAX_LABEL_CHARS} characters, no NUL")
    if text.lower() in ("nan", "inf", "-inf", "infinity", "-infinity"):
        raise InvalidData(f"{where}: label {text!r} is not a usable value")


def _frame(ids: Sequence[str], labels: Sequence[str], stamps: Sequence[int | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {"request_id": ids, "label": labels, "ts_ms": stamps},
        schema={"request_id": pl.String(), "label": pl.String(), "ts_ms": pl.Int64()},
    )


def read_feedback_file(path: Path, *, max_labels: int = MAX_LABELS_PER_FILE) -> pl.DataFrame:
    """Read labels from CSV, JSON Lines or Parquet (by extension), validated like JSON bodies.

    Files need the columns ``request_id`` and ``label``; ``ts_ms`` is optional; other columns
    are ignored.

    Raises:
        InvalidArgument: An unknown extension or a missing file.
        InvalidData: The file does not parse, lacks a column, or has an invalid row (named by
            its 1-based row number).
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidArgument(f"feedback file {path} does not exist")
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path, max_labels)
    if suffix == ".csv":
        frame = _read_table(path, lambda: pl.read_csv(path, infer_schema=False))
    elif suffix in (".parquet", ".pq"):
        frame = _read_table(path, lambda: pl.read_parquet(path))
    else:
        raise InvalidArgument(f"feedback file {path.name}: use .csv, .jsonl or .parquet")
    return _table_labels(frame, path.name, max_labels)


def _read_table(path: Path, read: Any) -> pl.DataFrame:
    try:
        frame: pl.DataFrame = read()
    except (pl.exceptions.PolarsError, OSError, ValueError) as e:
        raise InvalidData(f"feedback file {path.name} does not parse: {e}") from e
    return frame.rename({c: c.lstrip("\ufeff").strip() for c in frame.columns})


def _table_labels(frame: pl.DataFrame, name: str, max_labels: int) -> pl.DataFrame:
    missing = [c for c in ("request_id", "label") if c not in frame.columns]
    if missing:
        raise InvalidData(f"feedback file {name} lacks column(s) {', '.join(missing)}")
    if frame.height == 0:
        raise InvalidData(f"feedback file {name} has no rows")
    if frame.height > max_labels:
        raise InvalidData(f"feedback file {name} has {frame.height} rows; at most {max_labels}")
    label = frame.get_column("label")
    if label.dtype.is_float() and label.is_nan().any():
        row = int(label.is_nan().arg_true()[0]) + 1
        raise InvalidData(f"feedback file {name}, row {row}: label is NaN")
    if label.dtype == pl.Boolean:
        label = label.replace_strict({True: "true", False: "false"}, return_dtype=pl.String)
    stamps = pl.Series("ts_ms", [None] * frame.height, dtype=pl.Int64)
    if "ts_ms" in frame.columns:
        try:
            stamps = frame.get_column("ts_ms").cast(pl.Int64, strict=True)
        except pl.exceptions.PolarsError as e:
            raise InvalidData(f"feedback file {name}: ts_ms must be integers: {e}") from e
    out = pl.DataFrame(
        {
            "request_id": frame.get_column("request_id").cast(pl.String),
            "label": label.cast(pl.String),
            "ts_ms": stamps,
        }
    )
    for row, (request_id, text, ts_ms) in enumerate(out.iter_rows(), start=1):
        where = f"feedback file {name}, row {row}"
        _request_id(request_id, where)
        if text is None:
            raise InvalidData(f"{where}: label is empty")
        _check_label_text(text, where)
        if ts_ms is not None and ts_ms < 0:
            raise InvalidData(f"{where}: ts_ms must be >= 0")
    return out


def _read_jsonl(path: Path, max_labels: int) -> pl.DataFrame:
    ids: list[str] = []
    labels: list[str] = []
    stamps: list[int | None] = []
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if len(ids) >= max_labels:
                raise InvalidData(f"feedback file {path.name} has over {max_labels} labels")
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                raise InvalidData(f"feedback file {path.name}, line {n}: not JSON: {e}") from e
            try:
                request_id, label, ts_ms = _item(n, item)
            except InvalidData as e:
                raise InvalidData(str(e).replace("feedback item", f"{path.name} line", 1)) from e
            ids.append(request_id)
            labels.append(label)
            stamps.append(ts_ms)
    if not ids:
        raise InvalidData(f"feedback file {path.name} has no labels")
    return _frame(ids, labels, stamps)


class FeedbackStore:
    """Labels on disk as Parquet parts; ``add`` writes a batch, ``labels`` reads the latest."""

    def __init__(
        self,
        root: Path,
        *,
        predictions: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        match_lookback_ms: int | None = MATCH_LOOKBACK_MS,
    ) -> None:
        """Keep labels under ``root``; match them against the prediction log at ``predictions``.

        Args:
            root: Folder of the feedback parts.
            predictions: Folder of the prediction log; None reports every label unmatched.
            clock: Source of ``received_ms``.
            match_lookback_ms: How far back ``add`` looks for the labelled predictions (30
                days; None reads the whole log, for imports of old labels).
        """
        self.root = root
        self.predictions = predictions
        self._clock = clock
        self.match_lookback_ms = match_lookback_ms
        self._lock = threading.Lock()
        self._last_ms = 0

    @classmethod
    def beside(
        cls,
        predictions: Path,
        *,
        clock: Clock = SYSTEM_CLOCK,
        match_lookback_ms: int | None = MATCH_LOOKBACK_MS,
    ) -> FeedbackStore:
        """The store next to a prediction log: ``<predictions>/../feedback``."""
        return cls(
            predictions.parent / "feedback",
            predictions=predictions,
            clock=clock,
            match_lookback_ms=match_lookback_ms,
        )

    def _received_ms(self) -> int:
        with self._lock:  # strictly increasing: two batches never tie on "last wins"
            self._last_ms = max(self._clock.now_ms(), self._last_ms + 1)
            return self._last_ms

    def add(self, model: str, labels: pl.DataFrame) -> FeedbackReceipt:
        """Store a validated batch (``parse_feedback_json``/``read_feedback_file``) for ``model``.

        Raises:
            InvalidArgument: An empty model name or batch, or a ``ts_ms`` over a day ahead.
        """
        if not model or labels.height == 0:
            raise InvalidArgument("feedback needs a model name and at least one label")
        now = self._received_ms()
        ahead = labels.filter(pl.col("ts_ms") > now + MAX_FUTURE_MS)
        if ahead.height:
            raise InvalidData(
                f"label for request {ahead['request_id'][0]!r} has ts_ms {ahead['ts_ms'][0]}, "
                "more than a day in the future; send epoch milliseconds"
            )
        frame = labels.with_columns(
            pl.lit(model, pl.String).alias("model"),
            pl.col("ts_ms").fill_null(now),
            pl.lit(now, pl.Int64).alias("received_ms"),
            pl.int_range(pl.len(), dtype=pl.Int64).alias("seq"),
        ).select(list(FEEDBACK_SCHEMA))
        day = dt.datetime.fromtimestamp(now / 1000, tz=dt.UTC).strftime("%Y-%m-%d")
        write_part_atomic(self.root / f"date={day}", frame)
        ids = frame.get_column("request_id").unique(maintain_order=True)
        matched = self._matched(model, ids, now)
        unmatched = [i for i in ids.to_list() if i not in matched]
        return FeedbackReceipt(
            accepted=ids.len(),
            matched=ids.len() - len(unmatched),
            unmatched=len(unmatched),
            repeated=frame.height - ids.len(),
            unmatched_ids=unmatched[:_UNMATCHED_SHOWN],
        )

    def _matched(self, model: str, ids: pl.Series, now: int) -> set[str]:
        if self.predictions is None:
            return set()
        found = (
            read_prediction_log(
                self.predictions,
                since_ms=None if self.match_lookback_ms is None else now - self.match_lookback_ms,
            )
            .filter(pl.col("model") == model, pl.col("request_id").is_in(ids.implode()))
            .select(pl.col("request_id").unique())
            .collect()
        )
        return set(found.get_column("request_id").to_list())

    def labels(self, model: str | None = None) -> pl.DataFrame:
        """The latest label of each (model, request id); all models unless ``model`` is given."""
        if not any(self.root.glob("date=*/*.parquet")):
            return pl.DataFrame(schema=FEEDBACK_SCHEMA)
        lf = pl.scan_parquet(
            self.root / "date=*" / "*.parquet",
            schema=FEEDBACK_SCHEMA,
            hive_partitioning=True,
            hive_schema={"date": pl.String()},
            missing_columns="insert",
        ).select(list(FEEDBACK_SCHEMA))
        if model is not None:
            lf = lf.filter(pl.col("model") == model)
        return (
            lf.sort("received_ms", "seq")
            .unique(subset=["model", "request_id"], keep="last", maintain_order=True)
            .collect()
        )


def join_labels(predictions: pl.DataFrame | pl.LazyFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Predictions that have a label, one row per logged answer (shadow answers included).

    Returns:
        The prediction log's columns plus ``label`` and ``label_received_ms``, sorted by
        prediction time.
    """
    right = labels.lazy().select(
        "model", "request_id", "label", pl.col("received_ms").alias("label_received_ms")
    )
    return (
        predictions.lazy()
        .filter(pl.col("status") == 200)
        .join(right, on=["model", "request_id"], how="inner")
        .sort("ts_ms", "request_id", "variant")
        .collect()
    )
