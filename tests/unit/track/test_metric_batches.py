"""Checking a batch of metric values column by column gives what the per-value checks give."""

from __future__ import annotations

import decimal
import math

import numpy as np
import pytest

from shipyard.core.errors import InvalidArgument, InvalidMetricValue, InvalidName
from shipyard.track.validation import check_metric_values
from shipyard.track.workspace import Workspace


def test_a_plain_batch_is_passed_through_as_it_is() -> None:
    values = [("a", 1.0, 0, 10), ("b", math.nan, 0, 11), ("a", math.inf, 1, 12)]
    checked = check_metric_values(values)
    assert checked.values is values  # nothing copied
    assert sorted(checked.latest) == [("a", math.inf, 1, 12), ("b", values[1][1], 0, 11)]


def test_numpy_and_decimal_values_are_converted() -> None:
    checked = check_metric_values(
        [("a", np.float32(0.5), np.int64(3), 7.0), ("a", decimal.Decimal("2.5"), 4, np.int32(8))]
    )
    assert list(checked.values) == [("a", 0.5, 3, 7), ("a", 2.5, 4, 8)]
    assert all(type(v[1]) is float and type(v[2]) is int for v in checked.values)


def test_the_latest_value_of_each_key_when_logged_out_of_order() -> None:
    checked = check_metric_values([("a", 3.0, 5, 100), ("a", 1.0, 2, 200), ("a", 2.0, 5, 150)])
    assert checked.latest == [("a", 2.0, 5, 150)]


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (("a", "oops", 0, 1), InvalidMetricValue, "must be a real number"),
        (("a", True, 0, 1), InvalidMetricValue, "must be a real number"),
        (("a", 1.0, 0.5, 1), InvalidArgument, "step must be an integer"),
        (("a", 1.0, 0, -1), InvalidArgument, "non-negative epoch milliseconds"),
        (("a/../b", 1.0, 0, 1), InvalidName, "must not start with"),
        ((["unhashable"], 1.0, 0, 1), InvalidName, "must be a string"),
        (("a", 1.0, 0), InvalidArgument, r"must be \(key, value, step, timestamp_ms\)"),
        ("abcd", InvalidArgument, r"must be \(key, value, step, timestamp_ms\)"),
    ],
)
def test_a_bad_value_anywhere_is_named(item: object, error: type, message: str) -> None:
    good = [("a", float(i), i, i) for i in range(1000)]
    with pytest.raises(error, match=message):
        check_metric_values([*good, item])  # type: ignore[list-item]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_log_batch_accepts_lists_generators_and_mixed_types(workspace: Workspace) -> None:
    with workspace.start_run() as run:
        assert run.log_batch([["a", 1.0, 0, 5], ["a", 2.0, 1, 6]]) == 2
        assert run.log_batch(("b", np.float64(i), i, 10 + i) for i in range(3)) == 3
        run.log_metric("b", 9.0)
    history = workspace.metric_history(run.run_id, "b")
    assert [(p.value, p.step) for p in history] == [(0.0, 0), (1.0, 1), (2.0, 2), (9.0, 3)]
    assert workspace.get_run(run.run_id).metrics == {"a": 2.0, "b": 9.0}
