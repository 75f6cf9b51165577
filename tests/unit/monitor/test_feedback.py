"""Feedback labels: validation, durable storage with last-wins, matching and the join."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.monitor.feedback import (
    FeedbackStore,
    join_labels,
    parse_feedback_json,
    read_feedback_file,
)
from shipyard.monitor.logfiles import SCHEMA, write_part_atomic

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_700_000_000_000


def log_rows(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Prediction-log rows with defaults for the columns a test does not care about."""
    base = {
        "model": "churn",
        "version": 1,
        "variant": "production",
        "ts_ms": T0,
        "latency_ms": 1.0,
        "inputs_json": "{}",
        "outputs_json": "{}",
        "prediction": "1",
        "probability": 0.9,
        "status": 200,
        "anomaly_score": None,
    }
    return pl.DataFrame([{**base, **r} for r in rows], schema=SCHEMA, orient="row")


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    predictions = tmp_path / "predictions"
    write_part_atomic(
        predictions / "date=2023-11-14/hour=22",
        log_rows(
            [
                {"request_id": "a"},
                {"request_id": "b"},
                {"request_id": "b", "variant": "shadow:challenger", "version": 2},
                {"request_id": "other-model", "model": "fraud"},
            ]
        ),
    )
    return FeedbackStore.beside(predictions, clock=ManualClock(T0 + 60_000))


def test_parse_one_object_or_a_list() -> None:
    one = parse_feedback_json({"request_id": "a", "label": 1})
    assert one.to_dicts() == [{"request_id": "a", "label": "1", "ts_ms": None}]
    many = parse_feedback_json(
        [
            {"request_id": "a", "label": True, "ts_ms": 5},
            {"request_id": "b", "label": "churned"},
            {"request_id": "c", "label": 2.5},
        ]
    )
    assert many["label"].to_list() == ["true", "churned", "2.5"]
    assert many["ts_ms"].to_list() == [5, None, None]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("text", "object or a list"),
        ([], "empty list"),
        ([1], "item 0 is not an object"),
        ({"label": 1}, "missing request_id"),
        ({"request_id": "a"}, "missing label"),
        ({"request_id": "a", "label": 1, "model": "x"}, "unknown field"),
        ({"request_id": "", "label": 1}, "non-empty string"),
        ({"request_id": 7, "label": 1}, "non-empty string"),
        ({"request_id": "x" * 257, "label": 1}, "at most 256"),
        ({"request_id": "a\x00b", "label": 1}, "printable"),
        ({"request_id": "a", "label": None}, "string, number or boolean"),
        ({"request_id": "a", "label": [1]}, "string, number or boolean"),
        ({"request_id": "a", "label": {"x": 1}}, "string, number or boolean"),
        ({"request_id": "a", "label": ""}, "1 to 1024"),
        ({"request_id": "a", "label": "NaN"}, "not a usable value"),
        ({"request_id": "a", "label": 1, "ts_ms": "yesterday"}, "epoch milliseconds"),
        ({"request_id": "a", "label": 1, "ts_ms": True}, "epoch milliseconds"),
        ({"request_id": "a", "label": 1, "ts_ms": -1}, "epoch milliseconds"),
    ],
)
def test_parse_refuses_malformed_bodies(body: Any, message: str) -> None:
    with pytest.raises(InvalidData, match=message):
        parse_feedback_json(body)


def test_parse_refuses_too_many_labels() -> None:
    with pytest.raises(InvalidData, match="at most 3"):
        parse_feedback_json([{"request_id": str(i), "label": 1} for i in range(4)], max_labels=3)


def test_add_reports_matched_and_unmatched_and_keeps_both(store: FeedbackStore) -> None:
    receipt = store.add(
        "churn",
        parse_feedback_json(
            [
                {"request_id": "a", "label": 0},
                {"request_id": "b", "label": 1},
                {"request_id": "ghost", "label": 1},
                {"request_id": "other-model", "label": 1},  # logged, but for another model
            ]
        ),
    )
    assert receipt.to_dict() == {
        "accepted": 4,
        "matched": 2,
        "unmatched": 2,
        "repeated": 0,
        "unmatched_ids": ["ghost", "other-model"],
    }
    stored = store.labels("churn").sort("request_id")
    assert stored["request_id"].to_list() == ["a", "b", "ghost", "other-model"]
    assert stored["received_ms"].to_list() == [T0 + 60_000] * 4
    assert stored["ts_ms"].to_list() == [T0 + 60_000] * 4  # not given: when it was received
    assert list(store.root.glob("date=2023-11-14/part-*.parquet"))


def test_last_label_wins_within_and_across_batches(store: FeedbackStore) -> None:
    first = store.add(
        "churn",
        parse_feedback_json([{"request_id": "a", "label": 0}, {"request_id": "a", "label": 1}]),
    )
    assert (first.accepted, first.repeated) == (1, 1)
    assert store.labels("churn")["label"].to_list() == ["1"]
    store.add("churn", parse_feedback_json({"request_id": "a", "label": "0"}))  # same ms clock
    assert store.labels("churn")["label"].to_list() == ["0"]
    assert store.labels("fraud").height == 0
    assert store.labels().height == 1


def test_a_label_from_the_far_future_is_refused_and_nothing_written(
    store: FeedbackStore,
) -> None:
    body = [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 1, "ts_ms": T0 * 2}]
    with pytest.raises(InvalidData, match="more than a day in the future"):
        store.add("churn", parse_feedback_json(body))
    assert not store.root.exists()
    assert store.labels().height == 0


def test_add_needs_a_model_and_labels(store: FeedbackStore) -> None:
    with pytest.raises(InvalidArgument, match="model name"):
        store.add("", parse_feedback_json({"request_id": "a", "label": 1}))


def test_join_keeps_every_variant_and_only_the_labelled_model(store: FeedbackStore) -> None:
    store.add("churn", parse_feedback_json([{"request_id": "b", "label": 0}]))
    store.add("fraud", parse_feedback_json([{"request_id": "other-model", "label": 0}]))
    assert store.predictions is not None
    from shipyard.monitor.logfiles import read_prediction_log

    joined = join_labels(read_prediction_log(store.predictions), store.labels("churn"))
    assert joined.select("request_id", "variant", "version", "label").to_dicts() == [
        {"request_id": "b", "variant": "production", "version": 1, "label": "0"},
        {"request_id": "b", "variant": "shadow:challenger", "version": 2, "label": "0"},
    ]


def test_read_csv_jsonl_and_parquet(tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_bytes(b"\xef\xbb\xbfrequest_id,label,extra\na,1,x\nb,0,y\n")  # BOM, extra column
    assert read_feedback_file(csv).to_dicts() == [
        {"request_id": "a", "label": "1", "ts_ms": None},
        {"request_id": "b", "label": "0", "ts_ms": None},
    ]
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text(
        '{"request_id": "a", "label": true, "ts_ms": 3}\n\n{"request_id": "b", "label": 2}\n'
    )
    assert read_feedback_file(jsonl)["label"].to_list() == ["true", "2"]
    parquet = tmp_path / "labels.parquet"
    pl.DataFrame({"request_id": ["a", "b"], "label": [True, False], "ts_ms": [1, 2]}).write_parquet(
        parquet
    )
    assert read_feedback_file(parquet).to_dicts() == [
        {"request_id": "a", "label": "true", "ts_ms": 1},
        {"request_id": "b", "label": "false", "ts_ms": 2},
    ]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("x.txt", b"request_id,label\na,1\n", InvalidArgument, "use .csv, .jsonl or .parquet"),
        ("x.csv", b"id,label\na,1\n", InvalidData, "lacks column"),
        ("x.csv", b"request_id,label\n", InvalidData, "no rows"),
        ("x.csv", b"request_id,label\na,\n", InvalidData, "row 1: label is empty"),
        ("x.csv", b"request_id,label\na,1\n,1\n", InvalidData, "row 2: request_id"),
        ("x.csv", b"request_id,label\n\xff\xfe,1\n", InvalidData, "does not parse"),
        ("x.csv", b"request_id,label,ts_ms\na,1,soon\n", InvalidData, "ts_ms must be integers"),
        ("x.jsonl", b'{"request_id": "a", "label": 1}\n{oops\n', InvalidData, "line 2: not JSON"),
        ("x.jsonl", b'{"request_id": "a"}\n', InvalidData, "x.jsonl line 1: missing label"),
        ("x.jsonl", b"\n\n", InvalidData, "no labels"),
        ("x.parquet", b"not parquet", InvalidData, "does not parse"),
    ],
)
def test_read_refuses_bad_files(
    tmp_path: Path, name: str, content: bytes, error: type[Exception], message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        read_feedback_file(path)


def test_read_refuses_nan_labels_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pl.DataFrame({"request_id": ["a", "b"], "label": [0.5, float("nan")]}).write_parquet(path)
    with pytest.raises(InvalidData, match="row 2: label is NaN"):
        read_feedback_file(path)
    with pytest.raises(InvalidArgument, match="does not exist"):
        read_feedback_file(tmp_path / "missing.csv")
    too_many = tmp_path / "many.csv"
    too_many.write_text("request_id,label\na,1\nb,1\n")
    with pytest.raises(InvalidData, match="at most 1"):
        read_feedback_file(too_many, max_labels=1)
