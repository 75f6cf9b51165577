"""The bundle manifest: the input contract derived from data, and consistency rules."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from shipyard.core.errors import InvalidData
from shipyard.registry.manifest import BundleManifest, FeatureField, Lineage, features_from_frame

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _manifest(**overrides: Any) -> BundleManifest:
    base: dict[str, Any] = {
        "task": "binary",
        "target": "y",
        "features": [{"name": "x", "dtype": "float64", "nullable": False}],
        "classes": ["no", "yes"],
        "threshold": 0.4,
        "primary_metric": "roc_auc",
        "created_at": NOW,
    }
    return BundleManifest.model_validate({**base, **overrides})


def test_features_from_frame_reads_types_nulls_and_categories():
    frame = pl.DataFrame(
        {
            "n": [1.0, None, 3.0],
            "i": [1, 2, 3],
            "s": ["b", "a", None],
            "flag": [True, False, True],
            "cat": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "enum": pl.Series(["p", "q", "p"], dtype=pl.Enum(["p", "q", "r"])),
            "small": pl.Series([1, 2, 3], dtype=pl.Int16),
            "ignored": ["z", "z", "z"],
        }
    )
    fields = features_from_frame(frame, ["i", "n", "s", "flag", "cat", "enum", "small"])
    by_name = {f.name: f for f in fields}
    assert [f.name for f in fields] == ["i", "n", "s", "flag", "cat", "enum", "small"]
    assert by_name["n"] == FeatureField(name="n", dtype="float64", nullable=True)
    assert by_name["i"].dtype == "int64"
    assert not by_name["i"].nullable
    assert by_name["i"].categories is None
    assert by_name["s"].categories == ["a", "b"]  # sorted, nulls left out
    assert by_name["s"].nullable
    assert by_name["flag"].dtype == "bool"
    assert by_name["flag"].categories == ["false", "true"]
    assert by_name["cat"].dtype == "category"
    assert by_name["cat"].categories == ["x", "y"]
    assert by_name["enum"].dtype == "category"
    assert by_name["enum"].categories == ["p", "q"]
    assert by_name["small"].dtype == "int16"


def test_too_many_categories_are_not_listed():
    frame = pl.DataFrame({"s": [f"v{i}" for i in range(20)]})
    assert features_from_frame(frame, ["s"], max_categories=19)[0].categories is None
    assert len(features_from_frame(frame, ["s"], max_categories=20)[0].categories or []) == 20


def test_decimal_is_described_as_float_and_other_types_are_refused():
    frame = pl.DataFrame({"d": pl.Series([Decimal("1.5")], dtype=pl.Decimal(10, 2)), "l": [[1, 2]]})
    assert features_from_frame(frame, ["d"])[0].dtype == "float64"
    with pytest.raises(InvalidData, match="'l'"):
        features_from_frame(frame, ["l"])
    with pytest.raises(InvalidData, match="missing_col"):
        features_from_frame(frame, ["missing_col"])


def test_manifest_round_trips_through_json():
    manifest = _manifest(
        lineage=Lineage(run_id="r", dataset_ids={"source": "d"}, spec_hash="h", seed=3),
        metrics={"test": {"auc": 0.91, "missing": None}},
    )
    again = BundleManifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest
    assert again.feature_names == ["x"]
    assert again.format_version == 1
    assert again.model_format == "skops"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"classes": None}, "at least two classes"),
        ({"classes": ["a"]}, "at least two classes"),
        ({"classes": ["a", "b", "c"]}, "exactly two"),
        ({"classes": ["a", "a"]}, "twice"),
        ({"threshold": 1.0}, r"threshold must be in \(0, 1\)"),
        ({"threshold": 0.0}, r"threshold must be in \(0, 1\)"),
        ({"task": "multiclass", "classes": [0, 1, 2], "threshold": 0.5}, "only binary"),
        ({"task": "regression", "classes": ["a", "b"], "threshold": None}, "no classes"),
        ({"features": []}, "features is empty"),
        (
            {
                "features": [
                    {"name": "x", "dtype": "float64", "nullable": False},
                    {"name": "x", "dtype": "int64", "nullable": False},
                ]
            },
            "more than once",
        ),
        ({"target": "x"}, "also a feature"),
        ({"features": [{"name": "x", "dtype": "complex", "nullable": False}]}, "unknown type"),
        ({"created_at": dt.datetime(2026, 1, 1)}, "timezone"),
        ({"format_version": 2}, "upgrade Shipyard"),
        ({"model_format": "pickle"}, "skops"),
    ],
)
def test_inconsistent_manifests_are_refused(overrides: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        _manifest(**overrides)


def test_unknown_fields_are_refused_so_no_trusted_types_can_be_smuggled_in():
    document = json.loads(_manifest().model_dump_json())
    document["trusted_types"] = ["builtins.eval"]
    with pytest.raises(ValidationError, match="trusted_types"):
        BundleManifest.model_validate(document)
    document = json.loads(_manifest().model_dump_json())
    document["features"][0]["trusted"] = True
    with pytest.raises(ValidationError, match="trusted"):
        BundleManifest.model_validate(document)


def test_classes_from_numpy_become_plain_values():
    manifest = _manifest(task="multiclass", classes=np.unique([2, 0, 1]), threshold=None)
    assert manifest.classes == [0, 1, 2]
    assert all(type(c) is int for c in manifest.classes)
    booleans = _manifest(classes=np.array([False, True]))
    assert booleans.classes == [False, True]
    assert json.loads(booleans.model_dump_json())["classes"] == [False, True]


def test_regression_and_aliases():
    manifest = _manifest(
        task="regression",
        classes=None,
        threshold=None,
        features=[{"name": "x", "dtype": "float", "nullable": True}],
    )
    assert manifest.features[0].dtype == "float64"  # the alias resolves to the canonical name
