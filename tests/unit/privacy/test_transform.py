"""The privacy step: masking, generalization, suppression and the spec's own checks."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidArgument
from shipyard.privacy.generalize import (
    BandRule,
    DateRule,
    RedactRule,
    RoundRule,
    TruncateRule,
    generalize_expr,
    parse_rule,
)
from shipyard.privacy.transform import MaskRule, PrivacySpec, apply_privacy, mask_expr

KEY = b"k" * 32


def masked(values: list[str | None], rule: MaskRule) -> list[str | None]:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    return frame.select(mask_expr("v", rule)).to_series().to_list()


def test_mask_keeps_the_last_characters() -> None:
    assert masked(["+44 20 7946 0958", "1234", "12", None, "ab\ncdefg"], MaskRule()) == [
        "************0958",
        "****",  # no longer than what would be kept: hidden whole
        "**",
        None,
        "****defg",
    ]
    rule = MaskRule(keep_first=2, keep_last=2, char="#")
    assert masked(["4111111111111111"], rule) == ["41############11"]
    assert masked(["ab$cd"], MaskRule(keep_last=1, char="$")) == ["$$$$d"]


def generalized(values: list[Any], rule: Any, dtype: Any) -> list[Any]:
    frame = pl.DataFrame({"v": values}, schema={"v": dtype})
    return (
        frame.select(generalize_expr("v", parse_rule(rule), frame.schema["v"]))
        .to_series()
        .to_list()
    )


def test_generalization_rules() -> None:
    ages = [0, 9, 10, 39, 89, 90, 104, None]
    assert generalized(ages, {"kind": "band", "width": 10, "cap": 90}, pl.Int64) == [
        "0-9", "0-9", "10-19", "30-39", "80-89", "90+", "90+", None,
    ]  # fmt: skip
    assert generalized([1.5, 14.9, -3.2], BandRule(width=10), pl.Float64) == [
        "0.0-10.0", "10.0-20.0", "-10.0-0.0",
    ]  # fmt: skip
    assert generalized(["SW1A 1AA", "EC1", None], TruncateRule(keep=3), pl.String) == [
        "SW1", "EC1", None,
    ]  # fmt: skip
    day = dt.date(2020, 5, 17)
    assert generalized([day], DateRule(to="month"), pl.Date) == [dt.date(2020, 5, 1)]
    assert generalized([day], DateRule(to="year"), pl.Date) == [dt.date(2020, 1, 1)]
    moment = dt.datetime(2020, 5, 17, 13, 45)
    assert generalized([moment], DateRule(to="month"), pl.Datetime("us")) == [
        dt.datetime(2020, 5, 1)
    ]
    assert generalized([12, 13, 17, -12], RoundRule(step=5), pl.Int64) == [10, 15, 15, -10]
    assert generalized([1.26], RoundRule(step=0.5), pl.Float64) == [1.5]
    assert generalized([1, 2], RedactRule(), pl.Int64) == [None, None]


def test_rules_that_do_not_fit_the_column_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="not a date"):
        generalized(["2020-01-01"], DateRule(to="year"), pl.String)
    with pytest.raises(InvalidArgument, match="needs a numeric column"):
        generalized(["a"], BandRule(width=5), pl.String)
    with pytest.raises(InvalidArgument, match="invalid generalization rule"):
        parse_rule({"kind": "band", "width": 0})
    with pytest.raises(InvalidArgument, match="invalid generalization rule"):
        parse_rule({"kind": "blur"})


def test_apply_privacy_treats_each_column_and_keeps_the_others() -> None:
    frame = pl.DataFrame(
        {
            "email": ["ann@example.com", "bob@example.com"],
            "phone": ["+44 20 7946 0958", "555-123-4567"],
            "age": [34, 71],
            "postcode": ["SW1A 1AA", "EC1A 1BB"],
            "full_name": ["Ann A", "Bob B"],
            "amount": [1.5, 2.5],
        }
    )
    spec = PrivacySpec.model_validate(
        {
            "pseudonymize": ["email"],
            "mask": {"phone": {"keep_last": 4}},
            "generalize": {
                "age": {"kind": "band", "width": 10},
                "postcode": {"kind": "truncate", "keep": 3},
            },
            "suppress": ["full_name"],
        }
    )
    out = apply_privacy(frame.lazy(), spec, KEY).collect()
    assert out.columns == ["email", "phone", "age", "postcode", "amount"]
    assert out["phone"].to_list() == ["************0958", "********4567"]
    assert out["age"].to_list() == ["30-39", "70-79"]
    assert out["postcode"].to_list() == ["SW1", "EC1"]
    assert out["amount"].to_list() == [1.5, 2.5]
    assert out["email"].str.len_chars().to_list() == [32, 32]
    # No key needed when nothing is pseudonymized.
    assert apply_privacy(frame.lazy(), PrivacySpec(suppress=["email"]), None).collect().width == 5


def test_spec_refuses_unknown_fields_double_treatment_and_missing_columns() -> None:
    with pytest.raises(ValidationError, match="extra"):
        PrivacySpec.model_validate({"pseudonymize": ["a"], "key": "inline-secret"})
    with pytest.raises(ValidationError, match="both pseudonymize and suppress"):
        PrivacySpec(pseudonymize=["a"], suppress=["a"])
    with pytest.raises(ValidationError, match="key_env"):
        PrivacySpec(key_env="not a variable")
    frame = pl.LazyFrame({"a": [1]})
    with pytest.raises(InvalidArgument, match=r"'zz'.*columns: a"):
        apply_privacy(frame, PrivacySpec(suppress=["zz"]), None)
