"""proto3 JSON in and out: int64 as strings, NaN and infinities as words, precise 400s."""

from __future__ import annotations

import math

import pytest

from shipyard.serve.mlflow.errors import MlflowError
from shipyard.serve.mlflow.tracking import page_offset, page_token
from shipyard.serve.mlflow.wire import Fields, number_out, to_float, to_int


def test_numbers_arrive_as_proto3_json_sends_them() -> None:
    assert to_int("1700000000000", "timestamp") == 1_700_000_000_000
    assert to_int(-3, "step") == -3
    assert math.isnan(to_float("NaN", "value"))
    assert to_float("-Infinity", "value") == -math.inf
    assert to_float("0.5", "value") == 0.5
    assert [number_out(v) for v in (math.nan, math.inf, -math.inf, 1.5)] == [
        "NaN",
        "Infinity",
        "-Infinity",
        1.5,
    ]


@pytest.mark.parametrize("bad", [True, "1e", [1], {"a": 1}, "0x10", None])
def test_bad_numbers_are_400s(bad: object) -> None:
    with pytest.raises(MlflowError) as raised:
        to_float(bad, "value") if bad is not None else Fields({}).number("value")
    assert (raised.value.status, raised.value.code) == (400, "INVALID_PARAMETER_VALUE")
    with pytest.raises(MlflowError):
        to_int(bad, "step") if bad is not None else Fields({}).integer("step")


def test_fields_name_what_is_wrong() -> None:
    fields = Fields({"name": 3, "tags": "x", "ids": ["a", 1]})
    for read in (lambda: fields.text("name"), lambda: fields.objects("tags")):
        with pytest.raises(MlflowError, match="must be"):
            read()
    with pytest.raises(MlflowError, match="list of strings"):
        fields.strings("ids")
    with pytest.raises(MlflowError, match="missing value for required parameter 'run_id'"):
        fields.text("run_id")
    with pytest.raises(MlflowError, match="JSON object"):
        Fields([1, 2])


def test_page_tokens_round_trip_and_garbage_is_refused() -> None:
    assert page_offset(page_token(40)) == 40
    assert page_offset(None) == 0
    for bad in ("!!!", page_token(-1), "bm90IGEgbnVtYmVy"):
        with pytest.raises(MlflowError):
            page_offset(bad)
