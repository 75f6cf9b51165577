"""Window features over a dataset: shapes, point-in-time semantics, and bad specs refused."""

from __future__ import annotations

import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument
from shipyard.data.features import FeaturesSpec, add_features
from shipyard.data.windows import Window, duration_ms


def _spec(**features: dict[str, object]) -> FeaturesSpec:
    return FeaturesSpec.model_validate(
        {name: {"window": {"key": "acct", "time": "ts", **args}} for name, args in features.items()}
    )


def _run(frame: pl.DataFrame, **features: dict[str, object]) -> pl.DataFrame:
    return add_features(frame.lazy(), _spec(**features)).collect()


FRAME = pl.DataFrame(
    {
        "acct": ["a", "a", "b", "a", "a", "a"],
        "ts": [1_000, 2_000, 2_500, 9_000, 11_000, 16_000],
        "amt": [1.0, 2.0, 5.0, None, 4.0, 8.0],
        "cat": ["x", "y", "x", "x", None, "z"],
    }
)


@pytest.mark.parametrize(
    ("text", "ms"), [("250ms", 250), ("30s", 30_000), ("15m", 900_000), ("1.5h", 5_400_000), (7, 7)]
)
def test_durations(text: str | int, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("bad", ["", "5 parsecs", "-1s", "0s", 0, True, "1e3s"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        duration_ms(bad)  # type: ignore[arg-type]


def test_window_starts_and_buckets() -> None:
    tumbling = Window("tumbling", 10_000)
    assert tumbling.start(12_345) == 10_000
    assert tumbling.buckets(12_345) == [10_000]
    hopping = Window("hopping", 3_600_000, 900_000)  # a trailing hour at 15-minute resolution
    t = 10 * 3_600_000 + 20 * 60_000  # 10:20
    assert hopping.start(t) == 9 * 3_600_000 + 30 * 60_000  # 09:30: oldest window holding t
    assert len(hopping.buckets(t)) == 4  # 09:30, 09:45, 10:00, 10:15
    session = Window("session", 1_000, cap=5_000)
    assert session.buckets(10_500) == [5_000, 6_000, 7_000, 8_000, 9_000, 10_000]


def test_each_aggregate_over_earlier_events_of_the_same_key() -> None:
    out = _run(
        FRAME,
        n={"agg": "count", "tumbling": "10s"},
        n_amt={"agg": "count", "column": "amt", "tumbling": "1m"},
        total={"agg": "sum", "column": "amt", "tumbling": "1m"},
        avg={"agg": "mean", "column": "amt", "tumbling": "1m"},
        low={"agg": "min", "column": "amt", "tumbling": "1m"},
        high={"agg": "max", "column": "amt", "tumbling": "1m"},
        last_cat={"agg": "last", "column": "cat", "tumbling": "1m"},
        cats={"agg": "distinct", "column": "cat", "tumbling": "1m"},
    )
    assert out["n"].to_list() == [0, 1, 0, 2, 0, 1]  # 11 s and 16 s are in the second window
    assert out["n_amt"].to_list() == [0, 1, 0, 2, 2, 3]  # nulls are not counted
    assert out["total"].to_list() == [0.0, 1.0, 0.0, 3.0, 3.0, 7.0]
    assert out["avg"].to_list() == [None, 1.0, None, 1.5, 1.5, 7 / 3]
    assert out["low"].to_list() == [None, 1.0, None, 1.0, 1.0, 1.0]
    assert out["high"].to_list() == [None, 1.0, None, 2.0, 2.0, 4.0]
    assert out["last_cat"].to_list() == [None, "x", None, "y", "x", "x"]
    assert out["cats"].to_list() == [0, 1, 0, 2, 2, 2]
    assert out.schema["n"] == pl.Int64
    assert out.schema["last_cat"] == pl.String


def test_hopping_and_session_windows() -> None:
    out = _run(
        FRAME,
        trailing={"agg": "sum", "column": "amt", "hopping": "10s", "every": "5s"},
        visit={"agg": "count", "session": "3s"},
    )
    # 11 s: the oldest 10 s window holding it starts at 5 s -> only 9 s (a null amount).
    assert out["trailing"].to_list() == [0.0, 1.0, 0.0, 3.0, 0.0, 4.0]
    # sessions break where the gap is over 3 s: 2 s -> 9 s and 11 s -> 16 s.
    assert out["visit"].to_list() == [0, 1, 0, 0, 1, 0]


def test_a_row_never_sees_a_later_event_even_when_it_arrived_first() -> None:
    frame = pl.DataFrame({"acct": ["a"] * 3, "ts": [5_000, 3_000, 4_000], "amt": [1.0, 2.0, 4.0]})
    out = _run(frame, total={"agg": "sum", "column": "amt", "tumbling": "1m"})
    # 3 s came after 5 s but is earlier in time: 5 s (seen first) does not count it; 4 s
    # counts 3 s (arrived before it, earlier in time) but not 5 s (later in time).
    assert out["total"].to_list() == [0.0, 0.0, 2.0]


def test_datetime_time_columns_are_read_as_epoch_milliseconds() -> None:
    frame = FRAME.with_columns(pl.from_epoch("ts", time_unit="ms"))
    out = _run(frame, n={"agg": "count", "tumbling": "10s"})
    assert out["n"].to_list() == [0, 1, 0, 2, 0, 1]


def test_rows_without_key_or_time_get_nulls_and_are_not_counted() -> None:
    frame = pl.DataFrame({"acct": ["a", None, "a"], "ts": [1, 2, None], "amt": [1.0, 2.0, 3.0]})
    frame = frame.vstack(pl.DataFrame({"acct": ["a"], "ts": [4], "amt": [4.0]}))
    out = _run(frame, total={"agg": "sum", "column": "amt", "tumbling": "1m"})
    assert out["total"].to_list() == [0.0, None, None, 1.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"agg": "sum", "tumbling": "1m"}, "needs a column"),
        ({"agg": "count"}, "exactly one of"),
        ({"agg": "count", "tumbling": "1m", "session": "1m"}, "exactly one of"),
        ({"agg": "count", "hopping": "1h"}, "needs every"),
        ({"agg": "count", "hopping": "1h", "every": "7m"}, "not a multiple"),
        ({"agg": "count", "hopping": "1d", "every": "1s"}, "too fine"),
        ({"agg": "median", "column": "amt", "tumbling": "1m"}, "agg"),
        ({"agg": "count", "tumbling": "soon"}, "not a duration"),
    ],
)
def test_bad_window_specs_are_refused(args: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(f=args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"agg": "sum", "column": "cat", "tumbling": "1m"}, "needs a numeric column"),
        ({"agg": "max", "column": "nope", "tumbling": "1m"}, "no column 'nope'"),
    ],
)
def test_wrong_columns_are_refused(args: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _run(FRAME, f=args)


def test_a_text_time_column_is_refused() -> None:
    frame = FRAME.with_columns(pl.col("ts").cast(pl.String))
    with pytest.raises(InvalidArgument, match="epoch"):
        _run(frame, n={"agg": "count", "tumbling": "1m"})
