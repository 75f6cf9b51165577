"""Erasure in real prediction-log and feedback parts, as the server writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from shipyard.core.clock import ManualClock
from shipyard.monitor.erasure import LogFolder, log_holders
from shipyard.monitor.feedback import FeedbackStore
from shipyard.monitor.logfiles import read_prediction_log
from shipyard.privacy.subject import Subject
from shipyard.serve.prediction_log import PredictionLog, PredictionRecord

T0 = 1_780_000_000_000
ANN = "ann@example.com"


def answer(
    request_id: str, inputs: dict[str, list[Any]], outputs: dict[str, Any]
) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model="churn",
        version=1,
        variant="production",
        ts_ms=T0,
        latency_ms=1.0,
        inputs_json=orjson.dumps(inputs).decode(),
        outputs_json=orjson.dumps(outputs).decode(),
        prediction="x",
        probability=0.5,
        anomaly_score=1.5,
    )


def write_log(root: Path, records: list[PredictionRecord]) -> Path:
    predictions = root / "predictions"
    log = PredictionLog(predictions, clock=ManualClock(T0))
    for record in records:
        assert log.record(record)
    assert log.close()
    return predictions


def logged(predictions: Path) -> dict[str, dict[str, Any]]:
    frame = read_prediction_log(predictions).collect()
    return {r["request_id"]: r for r in frame.iter_rows(named=True)}


def test_a_request_with_other_rows_is_trimmed_and_a_request_of_the_subject_alone_goes(
    tmp_path: Path,
) -> None:
    predictions = write_log(
        tmp_path,
        [
            answer(
                "alone",
                {"email": [ANN], "age": [3]},
                {"predictions": [1], "probabilities": [[0.1, 0.9]]},
            ),
            answer(
                "pair",
                {"email": [ANN, "bob@x.org"], "age": [3, 4]},
                {"predictions": [1, 0], "probabilities": [[0.1, 0.9], [0.8, 0.2]]},
            ),
            answer("ragged", {"email": [ANN, "cy@x.org"], "age": [3, 5]}, {"predictions": [1]}),
            answer(
                "elsewhere", {"email": ["di@x.org"], "note": [f"cc {ANN}"]}, {"predictions": [0]}
            ),
            answer("other", {"email": ["joann@example.com"], "age": [9]}, {"predictions": [0]}),
        ],
    )
    store = FeedbackStore.beside(predictions, clock=ManualClock(T0))
    ids = ["alone", "pair", "ragged", "other"]
    store.add("churn", pl.DataFrame({"request_id": ids, "label": ["1"] * 4, "ts_ms": [T0] * 4}))
    holder = LogFolder.at(predictions)
    subject = Subject.of("email", ANN)

    dry = holder.erase(subject, dry_run=True)
    assert [(r.kind, r.files, r.rows, r.rows_trimmed) for r in dry] == [
        ("prediction_log", 1, 3, 1),
        ("feedback", 1, 2, 0),
    ]
    assert len(logged(predictions)) == 5  # a dry run writes nothing

    done = holder.erase(subject, dry_run=False)
    assert done == dry
    rows = logged(predictions)
    assert sorted(rows) == ["other", "pair"]
    pair = rows["pair"]
    assert orjson.loads(pair["inputs_json"]) == {"email": ["bob@x.org"], "age": [4]}
    assert orjson.loads(pair["outputs_json"]) == {"predictions": [0], "probabilities": [[0.8, 0.2]]}
    assert (pair["prediction"], pair["probability"], pair["anomaly_score"]) == ("0", 0.2, 1.5)
    assert sorted(store.labels("churn")["request_id"].to_list()) == ["other", "pair"]
    # Safe to repeat: nothing left to find.
    assert [r.files for r in holder.erase(subject, dry_run=False)] == [0, 0]


def test_numbers_match_their_column_only_and_labels_are_never_searched(tmp_path: Path) -> None:
    predictions = write_log(
        tmp_path,
        [
            answer("a", {"customer_id": [7], "age": [7]}, {"predictions": [7]}),
            answer("b", {"customer_id": [17], "age": [7]}, {"predictions": [7]}),
        ],
    )
    store = FeedbackStore.beside(predictions, clock=ManualClock(T0))
    store.add(
        "churn", pl.DataFrame({"request_id": ["a", "b"], "label": ["7", "7"], "ts_ms": [T0] * 2})
    )
    results = LogFolder.at(predictions).erase(Subject.of("customer_id", "7"), dry_run=False)
    assert [(r.kind, r.rows) for r in results] == [("prediction_log", 1), ("feedback", 1)]
    assert list(logged(predictions)) == ["b"]
    assert store.labels("churn")["request_id"].to_list() == ["b"]


def test_a_request_id_holding_the_value_takes_its_labels_with_it(tmp_path: Path) -> None:
    predictions = write_log(tmp_path, [answer(f"{ANN}-1", {"age": [1]}, {"predictions": [0]})])
    store = FeedbackStore.beside(predictions, clock=ManualClock(T0))
    store.add(
        "churn",
        pl.DataFrame(
            {"request_id": [f"{ANN}-1", f"{ANN}-2"], "label": ["0", "1"], "ts_ms": [T0, T0]}
        ),
    )
    results = LogFolder.at(predictions).erase(Subject.of("email", ANN), dry_run=False)
    assert [(r.rows, r.files) for r in results] == [(1, 1), (2, 1)]
    assert logged(predictions) == {}
    assert list((predictions).rglob("*.parquet")) == []  # an emptied part is deleted
    assert store.labels().height == 0


def test_log_holders_finds_the_default_folder_and_the_extra_ones(tmp_path: Path) -> None:
    assert log_holders(tmp_path) == []
    default = tmp_path / ".shipyard" / "predictions"
    default.mkdir(parents=True)
    extra = tmp_path / "elsewhere" / "log"
    extra.mkdir(parents=True)
    holders = log_holders(tmp_path, [extra, default, tmp_path / "missing"])
    assert [h.predictions for h in holders] == [default.resolve(), extra.resolve()]
    assert holders[1].feedback == extra.resolve().parent / "feedback"


@pytest.mark.parametrize("value", ["a.b+c@x.org", "(7)", "x y", "a|b", "-"])
def test_values_with_regex_characters_match_literally(value: str) -> None:
    subject = Subject.of("email", value)
    assert subject.in_text(f"1,{value},2")
    assert not subject.in_text(f"1,z{value}z,2")
    frame = pl.DataFrame({"t": [f"1,{value},2", "nothing"]})
    assert frame.select(subject.text_match("t"))["t"].to_list() == [True, False]
    assert value not in repr(subject)
