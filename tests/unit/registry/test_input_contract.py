"""The compiled input contract on its own: policy from the manifest, both readers, the layout."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest

from shipyard.registry.input_contract import (
    INFINITY,
    NOT_BOOL,
    NOT_NUMBER,
    NULL,
    UNSEEN,
    ContractViolation,
    InputContract,
    Problem,
)
from shipyard.registry.manifest import BundleManifest, FeatureField, InputPolicy


def _manifest(**policy: object) -> BundleManifest:
    return BundleManifest(
        task="regression",
        target="y",
        features=[
            FeatureField(name="x", dtype="float64", nullable=False),
            FeatureField(name="on", dtype="bool", nullable=True, categories=["false", "true"]),
            FeatureField(name="plan", dtype="string", nullable=True, categories=["a", "b"]),
        ],
        input_policy=InputPolicy.model_validate(policy),
        primary_metric="rmse",
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def _problems(contract: InputContract, columns: dict[str, list[object]]) -> list[Problem]:
    with pytest.raises(ContractViolation) as raised:
        contract.decode_columns(columns)
    return raised.value.problems


def test_the_policy_is_strict_by_default_and_old_manifests_read_strict() -> None:
    manifest = _manifest()
    assert manifest.input_policy == InputPolicy(
        unseen_categories="error", text_to_number=False, text_to_bool=False, infinity="error"
    )
    written = json.loads(manifest.model_dump_json())
    del written["input_policy"]  # a manifest written before the policy existed
    assert BundleManifest.model_validate(written).input_policy == InputPolicy()
    with pytest.raises(ValueError, match="infinity"):
        InputPolicy.model_validate({"infinity": "allow"})


def test_strict_and_lenient_policies_decide_text_and_unseen_categories() -> None:
    columns: dict[str, list[object]] = {"x": ["1.5"], "on": ["true"], "plan": ["c"]}
    strict = InputContract(_manifest())
    assert [(p.field, p.problem, p.rows) for p in _problems(strict, columns)] == [
        ("x", NOT_NUMBER, (0,)),
        ("on", NOT_BOOL, (0,)),
        ("plan", UNSEEN, (0,)),
    ]
    lenient = InputContract(
        _manifest(unseen_categories="unknown", text_to_number=True, text_to_bool=True)
    )
    decoded = lenient.decode_columns(columns)
    assert decoded.numbers.tolist() == [[1.5, 1.0]]
    assert decoded.texts.tolist() == [["c"]]
    # "1"/"0" are never booleans, and only decimal spellings are numbers
    odd: dict[str, list[object]] = {"x": ["inf", "1_000"], "on": ["1", "0"], "plan": [None, None]}
    assert [(p.field, p.problem, p.rows) for p in _problems(lenient, odd)] == [
        ("x", NOT_NUMBER, (0, 1)),
        ("on", NOT_BOOL, (0, 1)),
    ]


@pytest.mark.parametrize(
    "values",
    [
        [1.0, math.inf, None, 2, math.nan],  # plain numbers: decoded in one numpy call
        [1.0, math.inf, None, 2, math.nan, True],  # one bool: read cell by cell
    ],
)
def test_both_number_readers_give_the_same_problems(values: list[object]) -> None:
    contract = InputContract(_manifest())
    n = len(values)
    problems = _problems(contract, {"x": values, "on": [None] * n, "plan": [None] * n})
    expected = [Problem("x", INFINITY, (1,)), Problem("x", NULL, (2, 4))]
    if n == 6:
        expected.append(Problem("x", NOT_NUMBER, (5,)))
    assert problems == expected
    frame = pl.DataFrame({"x": values[:5], "on": [None] * 5, "plan": [None] * 5})
    assert contract.check_frame(frame).rejected == [
        (1, [("x", INFINITY)]),
        (2, [("x", NULL)]),
        (4, [("x", NULL)]),
    ]


def test_object_columns_are_read_with_the_json_rules() -> None:
    contract = InputContract(_manifest())
    frame = pl.DataFrame(
        {
            "x": pl.Series([1, "2", True, None], dtype=pl.Object),
            "on": [True, None, False, True],
            "plan": ["a", "b", None, "a"],
        }
    )
    check = contract.check_frame(frame)
    assert check.rejected == [
        (1, [("x", NOT_NUMBER)]),
        (2, [("x", NOT_NUMBER)]),
        (3, [("x", NULL)]),
    ]
    assert check.inputs.numbers.tolist() == [[1.0, 1.0]]


def test_decoded_rows_are_the_matrices_the_engines_take() -> None:
    contract = InputContract(_manifest())
    decoded = contract.decode_columns({"x": [1, 2.5], "on": [True, None], "plan": ["a", None]})
    assert decoded.number_names == ("x", "on")
    assert decoded.text_names == ("plan",)
    assert decoded.numbers.dtype == np.float64
    assert decoded.number("on")[0] == 1.0
    assert math.isnan(decoded.number("on")[1])
    assert decoded.text("plan").tolist() == ["a", None]
    frame = pl.DataFrame({"plan": ["a", None], "on": [True, None], "x": [1.0, 2.5], "id": [7, 8]})
    from_frame = contract.decode_frame(frame)
    np.testing.assert_array_equal(from_frame.numbers, decoded.numbers)
    assert from_frame.texts.tolist() == decoded.texts.tolist()
