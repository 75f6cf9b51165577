"""Prediction-log rows become typed feature rows, split into windows by time or by count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.drift import DriftReference, drift_for_window
from shipyard.monitor.logfiles import SCHEMA, write_part_atomic
from shipyard.monitor.windows import (
    decode_log,
    read_windows,
    split_windows,
    windows_by_count,
    windows_by_time,
)
from shipyard.train.reference import build_reference

T0 = 1_700_000_000_000
FULL_SCHEMA: dict[str, pl.DataType] = {
    "x": pl.Float64(),
    "c": pl.String(),
    "__prediction__": pl.String(),
    "__probability__": pl.Float64(),
}


def record(
    request_id: str,
    ts_ms: int,
    inputs: dict[str, list[Any]] | None,
    predictions: list[Any],
    probabilities: list[list[float]] | None = None,
    *,
    variant: str = "primary",
    status: int = 200,
    version: int = 1,
    raw_inputs: str | None = None,
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model": "m",
        "version": version,
        "variant": variant,
        "ts_ms": ts_ms,
        "latency_ms": 1.0,
        "inputs_json": raw_inputs if raw_inputs is not None else orjson.dumps(inputs).decode(),
        "outputs_json": orjson.dumps(
            {"predictions": predictions, "probabilities": probabilities}
        ).decode(),
        "prediction": str(predictions[0]),
        "probability": probabilities[0][-1] if probabilities else None,
        "status": status,
    }


def log(*records: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(records), schema=SCHEMA)


def test_each_request_row_becomes_one_typed_row_with_its_answer() -> None:
    decoded = decode_log(
        log(
            record("a", T0, {"x": [1.5, 2], "c": ["u", "v"]}, [0, 1], [[0.9, 0.1], [0.2, 0.8]]),
            record("b", T0 + 1, {"x": [3], "c": [True]}, [True], [[0.3, 0.7]]),
        ),
        FULL_SCHEMA,
    )
    frame = decoded.frame
    assert (decoded.requests, decoded.malformed) == (2, 0)
    assert frame.schema["x"] == pl.Float64
    assert frame.schema["c"] == pl.String
    assert frame.get_column("request_id").to_list() == ["a", "a", "b"]
    assert frame.get_column("x").to_list() == [1.5, 2.0, 3.0]
    assert frame.get_column("c").to_list() == ["u", "v", "true"]
    assert frame.get_column("__prediction__").to_list() == ["0", "1", "true"]
    assert frame.get_column("__probability__").to_list() == [0.1, 0.8, 0.7]


def test_bad_log_rows_are_counted_and_left_out_never_a_crash() -> None:
    decoded = decode_log(
        log(
            record("ok", T0, {"x": [1.0], "c": ["u"]}, [0], [[0.6, 0.4]]),
            record("garbage", T0, None, [0], raw_inputs="{not json"),
            record("uneven", T0, {"x": [1.0, 2.0], "c": ["u"]}, [0, 1]),
            record("wrong-type", T0, {"x": ["abc", 4.0], "c": ["w", None]}, [1, 0]),
            record("no-c", T0, {"x": [7.0, 8.0]}, [1, 1], [[0.5, 0.5]]),  # wrong answer length
        ),
        FULL_SCHEMA,
    )
    assert (decoded.requests, decoded.malformed) == (5, 2)
    frame = decoded.frame
    assert (
        frame.get_column("request_id").to_list()
        == ["ok", "wrong-type", "wrong-type"] + ["no-c"] * 2
    )
    assert frame.get_column("x").to_list() == [1.0, None, 4.0, 7.0, 8.0]  # "abc": missing
    assert frame.get_column("c").to_list() == ["u", "w", None, None, None]
    assert frame.get_column("__probability__").to_list() == [0.4, None, None, None, None]


def test_failed_answers_and_shadows_are_left_out_unless_asked() -> None:
    rows = log(
        record("a", T0, {"x": [1.0], "c": ["u"]}, [0]),
        record("a", T0, {"x": [1.0], "c": ["u"]}, [1], variant="shadow:challenger"),
        record("b", T0, {"x": [2.0], "c": ["u"]}, [0], status=500),
    )
    assert decode_log(rows, FULL_SCHEMA).frame.height == 1
    both = decode_log(rows, FULL_SCHEMA, include_shadow=True).frame
    assert both.get_column("variant").to_list() == ["primary", "shadow:challenger"]


def test_time_windows_are_aligned_and_carry_their_versions() -> None:
    frame = decode_log(
        log(
            record("a", T0 + 10, {"x": [1.0], "c": ["u"]}, [0], version=1),
            record("b", T0 + 999, {"x": [2.0], "c": ["u"]}, [0], version=2),
            record("c", T0 + 3500, {"x": [3.0, 4.0], "c": ["u", "v"]}, [0, 1], version=2),
        ),
        FULL_SCHEMA,
    ).frame
    windows = windows_by_time(frame, 1000, origin_ms=T0, now_ms=T0 + 3900)
    assert [(w.start_ms - T0, w.end_ms - T0, w.rows) for w in windows] == [
        (0, 1000, 2),
        (3000, 4000, 2),  # the empty windows between are omitted
    ]
    assert [w.versions for w in windows] == [(1, 2), (2,)]
    assert [w.version for w in windows] == [None, 2]
    assert [w.complete for w in windows] == [True, False]


def test_count_windows_keep_time_order_and_mark_a_short_last_one() -> None:
    frame = pl.DataFrame({"ts_ms": [5, 1, 4, 2, 3], "version": [1] * 5, "x": [5.0, 1, 4, 2, 3]})
    windows = windows_by_count(frame, 2)
    assert [w.frame.get_column("x").to_list() for w in windows] == [[1, 2], [3, 4], [5]]
    assert [(w.start_ms, w.end_ms, w.complete) for w in windows] == [
        (1, 3, True),
        (3, 5, True),
        (5, 6, False),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"every_ms": 10, "rows": 5}, "exactly one"),
        ({"every_ms": 0}, "every_ms must be positive"),
        ({"rows": -1}, "rows must be positive"),
    ],
)
def test_bad_window_sizes_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        split_windows(pl.DataFrame({"ts_ms": [1]}), **kwargs)


def test_rows_without_time_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="no ts_ms"):
        windows_by_count(pl.DataFrame({"x": [1.0]}), 1)


def test_from_the_log_on_disk_to_a_drift_report(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    train = pl.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["u", "v"], 3000)})
    reference = DriftReference.from_profile(build_reference(train, ["x", "c"]))
    records = []
    for i in range(40):  # 40 requests x 10 rows, one per minute; the second half shifted
        shift = 1.0 if i >= 20 else 0.0
        x = (rng.normal(size=10) + shift).tolist()
        c = rng.choice(["u", "v"], 10).tolist()
        records.append(record(f"r{i}", T0 + i * 60_000, {"x": x, "c": c}, [0] * 10, version=4))
    root = tmp_path / "predictions"
    write_part_atomic(root / "date=2023-11-14" / "hour=22", log(*records))
    windows, decoded = read_windows(root, reference.schema(), rows=200, model="m")
    assert decoded.malformed == 0
    assert [w.rows for w in windows] == [200, 200]
    reports = [drift_for_window(reference, w, model="m") for w in windows]
    assert [r.drifted for r in reports] == [[], ["x"]]
    assert {r.version for r in reports} == {4}
    assert reports[1].window_start_ms == T0 + 20 * 60_000
