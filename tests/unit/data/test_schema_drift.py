from __future__ import annotations

import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument, InvalidData, SchemaDrift
from shipyard.data.schema_drift import (
    Drift,
    Retyped,
    SchemaSnapshot,
    apply_drift_policy,
    detect_drift,
)

BASE = SchemaSnapshot((("order_id", "int64"), ("amount", "float64"), ("status", "string")))


def snap(*columns: tuple[str, str]) -> SchemaSnapshot:
    return SchemaSnapshot(tuple(columns))


def test_snapshot_of_frame_uses_contract_type_names_and_skips_bookkeeping() -> None:
    lf = pl.LazyFrame(
        {"a": [1], "b": ["x"], "c": [True], "_source": ["s"], "_row": [0]},
        schema_overrides={"a": pl.Int32},
    ).with_columns(d=pl.lit(None, dtype=pl.Datetime("us", "UTC")))
    assert SchemaSnapshot.of(lf).columns == (
        ("a", "int32"),
        ("b", "string"),
        ("c", "bool"),
        ("d", "datetime_utc"),
    )
    assert SchemaSnapshot.of(lf, bookkeeping=True).names[-2:] == ("_row", "d")
    assert SchemaSnapshot.of(lf.collect()) == SchemaSnapshot.of(lf)
    assert SchemaSnapshot.of({"x": pl.Float64()}).types == {"x": "float64"}


def test_snapshot_json_round_trip_keeps_order() -> None:
    text = BASE.to_json()
    assert SchemaSnapshot.from_json(text) == BASE
    assert SchemaSnapshot.from_json(text.encode()).names == ("order_id", "amount", "status")


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"format": 1}', '{"format": 1, "columns": [{"name": "a"}]}'],
)
def test_malformed_snapshot_json_is_invalid_data(text: str) -> None:
    with pytest.raises(InvalidData, match="malformed"):
        SchemaSnapshot.from_json(text)


def test_unknown_snapshot_format_says_upgrade() -> None:
    with pytest.raises(InvalidData, match=r"format 2 is not supported.*upgrade"):
        SchemaSnapshot.from_json('{"format": 2, "columns": []}')


def test_duplicate_columns_rejected() -> None:
    with pytest.raises(InvalidArgument, match="duplicate"):
        snap(("a", "int64"), ("a", "string"))


def test_first_run_and_unchanged_schema_have_no_drift() -> None:
    assert detect_drift(None, BASE).is_empty
    assert detect_drift(BASE, BASE).is_empty
    assert apply_drift_policy(detect_drift(BASE, BASE), "fail", source="orders") == []


def test_column_order_is_not_drift() -> None:
    shuffled = snap(("status", "string"), ("order_id", "int64"), ("amount", "float64"))
    assert detect_drift(BASE, shuffled) == Drift()


def test_rename_detected_with_fix() -> None:
    current = snap(("order_id", "int64"), ("amount_eur", "float64"), ("status", "string"))
    drift = detect_drift(BASE, current)
    assert drift.removed == ("amount",)
    assert drift.added == ("amount_eur",)
    assert drift.renamed == (("amount", "amount_eur"),)
    with pytest.raises(SchemaDrift) as info:
        apply_drift_policy(drift, "fail", source="orders")
    assert str(info.value) == (
        "source 'orders': column 'amount' disappeared and 'amount_eur' appeared — if it was "
        "renamed, add `amount_eur: amount` under sources.orders.harmonize.rename, or set "
        "on_schema_drift: adapt"
    )


def test_added_column_detected() -> None:
    current = snap(*BASE.columns, ("coupon", "string"))
    drift = detect_drift(BASE, current)
    assert (drift.added, drift.removed, drift.retyped, drift.renamed) == (("coupon",), (), (), ())
    with pytest.raises(SchemaDrift) as info:
        apply_drift_policy(drift, "fail", source="orders")
    assert str(info.value) == (
        "source 'orders': column 'coupon' (string) appeared — to ignore it, add it to "
        "sources.orders.harmonize.drop, or set on_schema_drift: adapt"
    )


def test_removed_column_detected() -> None:
    current = snap(("order_id", "int64"), ("amount", "float64"))
    drift = detect_drift(BASE, current)
    assert (drift.added, drift.removed, drift.renamed) == ((), ("status",), ())
    with pytest.raises(SchemaDrift) as info:
        apply_drift_policy(drift, "fail", source="orders")
    assert str(info.value) == (
        "source 'orders': column 'status' (string) disappeared — if it was renamed upstream, "
        "map the new name to 'status' under sources.orders.harmonize.rename, or set "
        "on_schema_drift: adapt"
    )


def test_retyped_column_detected() -> None:
    current = snap(("order_id", "int64"), ("amount", "string"), ("status", "string"))
    drift = detect_drift(BASE, current)
    assert drift.retyped == (Retyped("amount", "float64", "string"),)
    assert not drift.added
    assert not drift.removed
    with pytest.raises(SchemaDrift) as info:
        apply_drift_policy(drift, "fail", source="orders")
    assert str(info.value) == (
        "source 'orders': column 'amount' changed type from float64 to string — to keep "
        "float64, add `amount: float64` under sources.orders.harmonize.cast (values that do "
        "not parse are quarantined), or set on_schema_drift: adapt"
    )


def test_removed_and_added_of_different_types_are_not_a_rename() -> None:
    current = snap(("order_id", "int64"), ("amount_txt", "string"), ("status", "string"))
    drift = detect_drift(BASE, current)
    assert drift.renamed == ()
    with pytest.raises(SchemaDrift) as info:
        apply_drift_policy(drift, "fail", source="orders")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("source 'orders': column ") for line in lines)
    assert "'amount' (float64) disappeared" in lines[0]
    assert "'amount_txt' (string) appeared" in lines[1]


def test_renames_pair_most_similar_names() -> None:
    previous = snap(("price", "float64"), ("amount", "float64"))
    current = snap(("amount_eur", "float64"), ("price_eur", "float64"))
    assert detect_drift(previous, current).renamed == (
        ("price", "price_eur"),
        ("amount", "amount_eur"),
    )


def test_adapt_returns_one_warning_per_change() -> None:
    current = snap(("order_id", "string"), ("amount_eur", "float64"), ("coupon", "string"))
    drift = detect_drift(BASE, current)
    warnings = apply_drift_policy(drift, "adapt", source="orders")
    assert len(warnings) == 4  # rename, status removed, coupon added, order_id retyped
    assert all(w.startswith("source 'orders': ") for w in warnings)
    assert all("going on (on_schema_drift: adapt)" in w for w in warnings)
    assert "'amount' disappeared and 'amount_eur' appeared" in warnings[0]
    assert apply_drift_policy(Drift(), "adapt", source="orders") == []


def test_unknown_policy_rejected() -> None:
    with pytest.raises(InvalidArgument, match="fail or adapt"):
        apply_drift_policy(Drift(), "ignore", source="orders")  # type: ignore[arg-type]
