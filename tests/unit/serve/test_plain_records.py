"""The numpy reader of plain JSON records agrees with the full contract, and refuses the rest.

``RequestContract.plain_records`` decodes well-formed numeric records in one numpy call (the
serving hot path, issue 17). It must give exactly what the full check gives for rows it takes,
and take none of the bad bodies of the shared corpus (RELIABILITY.md, "HTTP bodies"), so those
still get the full contract's precise 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
import pytest

from shipyard.registry.input_contract import InputContract
from shipyard.registry.manifest import BundleManifest, FeatureField
from shipyard.serve.contract import MAX_ROWS, ContractError, RequestContract
from shipyard.serve.payloads import plain_columns
from shipyard.serve.routes.inference import decode_plain


def _contract(*extra: FeatureField) -> RequestContract:
    manifest = BundleManifest(
        task="regression",
        target="y",
        features=[
            FeatureField(name="x", dtype="float64", nullable=False),
            FeatureField(name="n", dtype="int64", nullable=True),
            *extra,
        ],
        primary_metric="rmse",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    return RequestContract(InputContract(manifest))


GOOD: list[Any] = [
    [{"x": 1.5, "n": 3}],
    [{"n": -2, "x": 0}, {"x": 1e300, "n": 2**53}],  # key order is free
    [{"x": float(i), "n": i} for i in range(500)],
]

# The HTTP-body entries of the corpus that reach the contract (over-limit bodies, NaN tokens,
# deep nesting and wrong content types are refused before it, by read_json).
BAD: list[Any] = [
    [{"x": 1.0}],  # missing column
    [{"x": 1.0, "n": 1, "extra": 2}],  # extra column
    [{"x": None, "n": 1}],  # null where nullable: false
    [{"x": 1.0, "n": None}, {"x": None, "n": 2}],
    [{"x": "1.0", "n": 1}],  # text for a number
    [{"x": True, "n": 1}],  # a boolean is not a number
    [{"x": [1.0], "n": 1}],  # nested
    [{"x": {"v": 1}, "n": 1}],
    [{"x": 10**400, "n": 1}],  # beyond float64
    [{"x": float("inf"), "n": 1}],  # infinity
    [{"x": 1.0, "n": 1}, "not an object"],
    [],  # no rows
    [{"x": 1.0, "n": 1}] * (MAX_ROWS + 1),  # too many rows
    {"x": 1.0, "n": 1},  # an object, not records or columns
    {"records": "nope"},
    "text",
    42,
]


@pytest.mark.parametrize("body", GOOD, ids=range(len(GOOD)))
def test_plain_numeric_records_decode_as_the_full_check_does(body: Any) -> None:
    contract = _contract()
    fast = contract.plain_records(body)
    assert fast is not None
    full = contract.frame(plain_columns(body))
    np.testing.assert_array_equal(fast.numbers, full.numbers)
    assert fast.number_names == full.number_names
    assert fast.texts.shape == full.texts.shape
    assert decode_plain(contract, body)[1] is None  # the fast reader answered


@pytest.mark.parametrize("body", BAD, ids=range(len(BAD)))
def test_bad_bodies_get_the_full_contracts_problems(body: Any) -> None:
    contract = _contract()
    assert contract.plain_records(body) is None
    with pytest.raises(ContractError) as through_the_hot_path:
        decode_plain(contract, body)
    with pytest.raises(ContractError) as through_the_full_check:
        contract.frame(plain_columns(body))
    assert through_the_hot_path.value.problems == through_the_full_check.value.problems
    assert through_the_hot_path.value.problems  # each names what is wrong


def test_duplicate_keys_are_read_as_orjson_parses_them() -> None:
    body = orjson.loads(b'[{"x": 1.0, "n": 1, "x": 2.0}]')  # the last value wins
    decoded = _contract().plain_records(body)
    assert decoded is not None
    assert decoded.numbers.tolist() == [[2.0, 1.0]]


def test_models_with_text_or_boolean_features_take_the_full_check() -> None:
    for extra in (
        FeatureField(name="plan", dtype="string", nullable=True, categories=["a"]),
        FeatureField(name="on", dtype="bool", nullable=True),
    ):
        contract = _contract(extra)
        body = [{"x": 1.0, "n": 1, extra.name: "a" if extra.dtype == "string" else True}]
        assert contract.plain_records(body) is None
        inputs, columns = decode_plain(contract, body)
        assert columns is not None
        assert inputs.height == 1
