"""The ``clean:`` step: coercion, string normalization, duplicates, imputation, outliers.

Steps run in this order, each on the output of the one before:

1. ``coerce: {column: type}``: cast without raising (``contract.lenient_cast``); values that
   had content but did not parse become null and are counted per column.
2. ``normalize: {column: {unicode, trim, case}}``: Unicode normalization (NFC, NFKC, NFD,
   NFKD, via Polars' ``str.normalize``), then trimming, then lower/upper case, so that
   ``" AB "`` with a fullwidth A (U+FF21) becomes ``"ab"`` with NFKC + trim + lower.
3. ``dedup``: without ``key``, rows equal in every column not starting with ``_`` keep their
   first occurrence; with ``key``, one row per key: the one with the greatest
   ``keep_latest_by`` (nulls count as oldest; ties keep the later row in input order), or the
   first one without it. Output keeps the input order. Removed rows are counted, not kept.
4. ``impute: {column: rule}``: ``mean`` / ``median`` (numeric; integer columns get the value
   rounded), ``mode`` (the smallest of tied modes), ``{constant: value}``, or
   ``{ffill_by: key, order_by: _row}`` (the last non-null value of the same key, in
   ``order_by`` order; a key's leading nulls stay null).
5. ``outliers: {column: {method, k, threshold, action}}``: ``iqr`` flags values outside
   ``[Q1 - k·IQR, Q3 + k·IQR]`` (linear quantiles, as numpy's default); ``robust_z`` flags
   ``|x - median| / (1.4826·MAD) > threshold`` (scipy's ``median_abs_deviation(...,
   scale="normal")``; a zero MAD flags nothing). ``clip`` moves values to the bounds (integer
   columns to the nearest integer inside them), ``flag`` adds a boolean ``<column>_outlier``,
   ``quarantine`` moves the row to ``quarantined`` with ``outlier.<column>`` in
   ``_failed_checks``. Bounds are fitted on the observed values (after dedup, before
   imputation, nulls ignored) so imputed values cannot narrow them; flags and clipping then
   apply to the imputed column.

Statistics (means, medians, quantiles, MADs) are fitted on the whole batch in one aggregate
query and recorded in the report so a run can be reproduced. Rows are conserved:
``rows_in == rows_out + rows_quarantined + rows_deduplicated``. ``clean`` reads its input
to count (rows, coercion failures), to fit (every statistic, after dedup) and then for the
outlier and forward-fill counts (skipped when there are none), each in Polars' streaming
engine. The returned frames are lazy and stream.

Dedup by ``key`` holds no row: the key columns are read (split by hash into parts of at most
4M rows, one read each: a ``group_by`` over 18M distinct keys alone takes 1 GiB) to find the
duplicated keys, then the rows of those keys (key, ``keep_latest_by``, row index) are ranked
in memory, and the losers are dropped from the stream by an anti-join on the row index. A
window ``.over(key)`` on the whole frame held every column: 1.8 GiB peak RSS on 6M rows x 12
columns, against 0.7 GiB now. Dedup without ``key`` (whole rows) still hashes every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.contract import Scalar, lenient_cast
from shipyard.data.dtypes import to_polars

if TYPE_CHECKING:
    from collections.abc import Mapping

FAILED = "_failed_checks"
_T = "__shipyard_"
_CFG = ConfigDict(extra="forbid", frozen=True)
_PART = 4_000_000  # rows per part of the duplicate-key search (see _duplicated_keys)
_SEED = 0x5EED
_Z = 0.6744897501960817  # the normal distribution's 75th percentile: MAD / _Z estimates sigma


class ConstantImpute(BaseModel):
    """``{constant: value}``: fill nulls with ``value`` (cast to the column's type)."""

    model_config = _CFG
    constant: Scalar


class FfillImpute(BaseModel):
    """``{ffill_by: key, order_by: _row}``: carry the last value of the same key forward."""

    model_config = _CFG
    ffill_by: str | list[str]
    order_by: str = "_row"


ImputeRule = Literal["mean", "median", "mode"] | ConstantImpute | FfillImpute


class OutlierRule(BaseModel):
    """``{method: iqr | robust_z, k, threshold, action: clip | flag | quarantine}``."""

    model_config = _CFG
    method: Literal["iqr", "robust_z"] = "iqr"
    k: float = Field(default=1.5, gt=0)  # iqr
    threshold: float = Field(default=3.5, gt=0)  # robust_z
    action: Literal["clip", "flag", "quarantine"] = "flag"


class DedupRule(BaseModel):
    """``{key, keep_latest_by}``; no key: exact duplicates across the non-``_`` columns."""

    model_config = _CFG
    key: str | list[str] | None = None
    keep_latest_by: str | None = None

    @model_validator(mode="after")
    def _latest_needs_key(self) -> DedupRule:
        if self.keep_latest_by is not None and self.key is None:
            raise ValueError("keep_latest_by needs a key (exact duplicates are all equal)")
        return self


class NormalizeRule(BaseModel):
    """``{unicode: NFC | NFKC | NFD | NFKD, trim: bool, case: lower | upper}``."""

    model_config = _CFG
    unicode: Literal["NFC", "NFKC", "NFD", "NFKD"] | None = None
    trim: bool = False
    case: Literal["lower", "upper"] | None = None


class CleanSpec(BaseModel):
    """The ``clean:`` step (see the module docstring for the order of its parts)."""

    model_config = _CFG
    coerce: dict[str, str] = Field(default_factory=dict)
    normalize: dict[str, NormalizeRule] = Field(default_factory=dict)
    dedup: DedupRule | None = None
    impute: dict[str, ImputeRule] = Field(default_factory=dict)
    outliers: dict[str, OutlierRule] = Field(default_factory=dict)

    @field_validator("coerce")
    @classmethod
    def _types(cls, value: dict[str, str]) -> dict[str, str]:
        for column, name in value.items():
            try:
                to_polars(name)
            except InvalidArgument as e:
                raise ValueError(f"coerce.{column}: {e.message}") from None
        return value


@dataclass(frozen=True)
class CleanReport:
    """What ``clean`` did. ``rows_in == rows_out + rows_quarantined + rows_deduplicated``."""

    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_deduplicated: int
    coerced_to_null: Mapping[str, int]  # column -> values that did not parse
    imputed: Mapping[str, int]  # column -> nulls filled
    outliers: Mapping[str, int]  # column -> rows outside the bounds
    statistics: Mapping[str, Mapping[str, Any]]  # "impute.<col>" / "outliers.<col>" -> values


@dataclass(frozen=True)
class CleanResult:
    """The cleaned frame and the quarantined rows (both lazy), and the report."""

    frame: pl.LazyFrame
    quarantined: pl.LazyFrame
    report: CleanReport


def clean(lf: pl.LazyFrame, spec: CleanSpec) -> CleanResult:
    """Run the ``clean:`` step on ``lf`` (see the module docstring).

    Raises:
        InvalidArgument: The spec names a missing column or one of the wrong type.
        InvalidData: The input cannot be read.
    """
    schema = dict(_schema(lf))
    for column in spec.coerce:
        _dtype(schema, column, "coerce")
    targets = {c: to_polars(t) for c, t in spec.coerce.items()}
    bad = {c: f"{_T}bad{i}" for i, c in enumerate(targets)}
    stage = lenient_cast(lf, targets, bad)
    counts_in = stage.select(
        pl.len().alias("rows"), *(pl.col(b).sum().alias(c) for c, b in bad.items())
    )
    stage = stage.drop(bad.values())
    schema.update(targets)
    stage = stage.with_columns(_normalize(c, r, schema) for c, r in spec.normalize.items())
    first = _collect([counts_in])[0].row(0, named=True)
    deduped = _dedup(stage, spec.dedup, schema, int(first["rows"]))
    impute = {c: (rule, _dtype(schema, c, "impute")) for c, rule in spec.impute.items()}
    fits = [_impute_stat(c, rule, dtype) for c, (rule, dtype) in impute.items()]
    stats_q = deduped.select(
        pl.len().alias("rows"),
        *(pl.col(c).null_count().alias(f"nulls.{c}") for c in impute),
        *(e.alias(f"impute.{c}") for c, e in zip(impute, fits, strict=True) if e is not None),
        *_outlier_aggs(spec, schema),
    )
    fitted = _collect([stats_q])[0].row(0, named=True)
    statistics: dict[str, dict[str, Any]] = {
        k: {"value": v} for k, v in fitted.items() if k.startswith("impute.")
    }
    imputed = deduped.with_columns(
        _impute(c, rule, dtype, fitted.get(f"impute.{c}"), schema)
        for c, (rule, dtype) in impute.items()
    )
    bounds = _bounds(spec, fitted, statistics)
    flags = {c: f"{_T}o{i}" for i, c in enumerate(bounds)}
    marked = imputed.with_columns(
        ((pl.col(c) < lo) | (pl.col(c) > hi)).fill_null(False).alias(flags[c])
        for c, (lo, hi) in bounds.items()
    )
    held = [flags[c] for c in bounds if spec.outliers[c].action == "quarantine"]
    hold = pl.any_horizontal(held) if held else pl.lit(False)
    ffill = [c for c, (rule, _) in impute.items() if isinstance(rule, FfillImpute)]
    last = marked.select(
        pl.col(list(flags.values())).sum(),
        hold.sum().alias("held"),
        *(pl.col(c).null_count().alias(f"nulls.{c}") for c in ffill),
    )
    final = _collect([last])[0].row(0, named=True) if flags or ffill else {"held": 0}
    for column, (rule, _) in impute.items():  # a fill value fills every null, or none
        if column not in ffill:
            filled = (
                rule.constant
                if isinstance(rule, ConstantImpute)
                else fitted.get(f"impute.{column}")
            )
            final[f"nulls.{column}"] = fitted[f"nulls.{column}"] if filled is None else 0
    frame = marked.filter(~hold).with_columns(_outlier_actions(spec, bounds, flags, schema))
    names = [pl.when(pl.col(flags[c])).then(pl.lit(f"outlier.{c}")) for c in bounds]
    listed = pl.concat_list(names).list.drop_nulls() if names else pl.lit([], pl.List(pl.String))
    if FAILED in schema:
        listed = pl.col(FAILED).list.concat(listed)
    quarantined = marked.filter(hold).with_columns(listed.alias(FAILED))
    report = CleanReport(
        rows_in=int(first["rows"]),
        rows_out=int(fitted["rows"]) - int(final["held"]),
        rows_quarantined=int(final["held"]),
        rows_deduplicated=int(first["rows"]) - int(fitted["rows"]),
        coerced_to_null={c: int(first[c]) for c in targets},
        imputed={c: int(fitted[f"nulls.{c}"]) - int(final[f"nulls.{c}"]) for c in impute},
        outliers={c: int(final[flags[c]]) for c in bounds},
        statistics=statistics,
    )
    return CleanResult(frame.drop(flags.values()), quarantined.drop(flags.values()), report)


def _schema(lf: pl.LazyFrame) -> pl.Schema:
    try:
        return lf.collect_schema()
    except pl.exceptions.PolarsError as e:
        raise InvalidData(f"clean: cannot read the input's columns: {e}") from e


def _collect(frames: list[pl.LazyFrame]) -> list[pl.DataFrame]:
    try:
        return pl.collect_all(frames, engine="streaming")
    except pl.exceptions.PolarsError as e:
        raise InvalidData(f"clean: could not compute over the input: {e}") from e


def _dtype(schema: Mapping[str, pl.DataType], column: str, step: str) -> pl.DataType:
    if column not in schema:
        raise InvalidArgument(
            f"clean.{step}: no column {column!r}; columns are {', '.join(schema)}"
        )
    return schema[column]


def _numeric(schema: Mapping[str, pl.DataType], column: str, step: str) -> pl.DataType:
    dtype = _dtype(schema, column, step)
    if not dtype.is_numeric():
        raise InvalidArgument(
            f"clean.{step}.{column}: needs a numeric column, not {dtype}; coerce it first"
        )
    return dtype


def _normalize(column: str, rule: NormalizeRule, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    if _dtype(schema, column, "normalize") != pl.String:
        raise InvalidArgument(f"clean.normalize.{column}: needs a string column")
    expr = pl.col(column)
    if rule.unicode is not None:
        expr = expr.str.normalize(rule.unicode)
    if rule.trim:
        expr = expr.str.strip_chars()
    if rule.case is not None:
        expr = expr.str.to_lowercase() if rule.case == "lower" else expr.str.to_uppercase()
    return expr


def _dedup(
    lf: pl.LazyFrame, rule: DedupRule | None, schema: Mapping[str, pl.DataType], rows_in: int
) -> pl.LazyFrame:
    if rule is None:
        return lf
    if rule.key is None:
        columns = [c for c in schema if not c.startswith("_")]
        return lf.unique(subset=columns, keep="first", maintain_order=True)
    key = [rule.key] if isinstance(rule.key, str) else rule.key
    for column in key:
        _dtype(schema, column, "dedup")
    order = rule.keep_latest_by
    if order is not None:
        _dtype(schema, order, "dedup")
    index = f"{_T}index"
    rows = lf.select(list(dict.fromkeys([*key, *([order] if order else [])]))).with_row_index(index)
    dups = _duplicated_keys(rows, key, rows_in)
    if dups.is_empty():
        return lf
    # Only the rows of duplicated keys (usually few) are ranked, by the same rule as before:
    # the greatest ``order`` (nulls oldest), ties to the later row; else the first row.
    twins = _collect([rows.join(dups.lazy(), on=key, how="semi", nulls_equal=True)])[0]
    if order is None:
        kept = pl.col(index).min()
    else:
        kept = pl.col(index).sort_by([order, index], nulls_last=False).last()
    losers = twins.filter(pl.col(index) != kept.over(key)).select(index)
    return (
        lf.with_row_index(index)
        .join(losers.lazy(), on=index, how="anti", maintain_order="left")
        .drop(index)
    )


def _duplicated_keys(rows: pl.LazyFrame, key: list[str], count: int) -> pl.DataFrame:
    """The keys that occur more than once (null parts included, as ``over`` groups them).

    A ``group_by`` over all keys holds every distinct key (18M int64 keys: 1 GiB of RSS), so
    the keys are split by hash into parts of at most ``_PART`` rows, one read of the key
    columns each; a part's table is then the most held at once.
    """
    parts = max(1, math.ceil(count / _PART))
    found = []
    for part in range(parts):
        own = rows.select(key)
        if parts > 1:
            own = own.filter(pl.struct(key).hash(_SEED) % parts == part)
        counted = own.group_by(key).agg(pl.len().alias(f"{_T}n"))
        found.append(counted.filter(pl.col(f"{_T}n") > 1).select(key))
    return pl.concat([_collect([f])[0] for f in found])


def _impute_stat(column: str, rule: ImputeRule, dtype: pl.DataType) -> pl.Expr | None:
    """The aggregate a rule needs (mean / median / mode), or ``None``."""
    if rule in ("mean", "median"):
        if not dtype.is_numeric():
            raise InvalidArgument(f"clean.impute.{column}: {rule} needs a numeric column")
        return pl.col(column).mean() if rule == "mean" else pl.col(column).median()
    if rule == "mode":
        return pl.col(column).drop_nulls().mode().sort().first()
    return None


def _impute(
    column: str,
    rule: ImputeRule,
    dtype: pl.DataType,
    stat: Any,
    schema: Mapping[str, pl.DataType],
) -> pl.Expr:
    col = pl.col(column)
    if isinstance(rule, FfillImpute):
        keys = [rule.ffill_by] if isinstance(rule.ffill_by, str) else rule.ffill_by
        for name in [*keys, rule.order_by]:
            _dtype(schema, name, f"impute.{column}")
        return col.forward_fill().over(keys, order_by=rule.order_by)
    value = rule.constant if isinstance(rule, ConstantImpute) else stat
    if value is None:
        return col
    if dtype.is_integer() and isinstance(value, float):
        value = round(value)
    try:
        pl.Series([value]).cast(dtype, strict=True)
    except pl.exceptions.PolarsError as e:
        raise InvalidArgument(f"clean.impute.{column}: {value!r} does not fit {dtype}") from e
    return col.fill_null(pl.lit(value).cast(dtype))


def _outlier_aggs(spec: CleanSpec, schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """The aggregates the outlier bounds need, for the statistics query."""
    aggs: list[pl.Expr] = []
    for column, rule in spec.outliers.items():
        _numeric(schema, column, "outliers")
        col = pl.col(column).cast(pl.Float64)
        if rule.method == "iqr":
            aggs += [
                col.quantile(0.25, "linear").alias(f"outliers.{column}.q1"),
                col.quantile(0.75, "linear").alias(f"outliers.{column}.q3"),
            ]
        else:
            aggs += [
                col.median().alias(f"outliers.{column}.median"),
                (col - col.median()).abs().median().alias(f"outliers.{column}.mad"),
            ]
    return aggs


def _bounds(
    spec: CleanSpec, row: Mapping[str, Any], statistics: dict[str, dict[str, Any]]
) -> dict[str, tuple[float, float]]:
    """Every outlier column's ``(lower, upper)``, infinite where they cannot be fit."""
    bounds: dict[str, tuple[float, float]] = {}
    for column, rule in spec.outliers.items():
        stats = {
            k.rsplit(".", 1)[1]: v for k, v in row.items() if k.startswith(f"outliers.{column}.")
        }
        lo = hi = None
        if rule.method == "iqr" and stats["q1"] is not None:
            iqr = stats["q3"] - stats["q1"]
            lo, hi = stats["q1"] - rule.k * iqr, stats["q3"] + rule.k * iqr
        elif rule.method == "robust_z" and stats["mad"]:  # 0 or None: nothing is an outlier
            spread = rule.threshold * stats["mad"] / _Z
            lo, hi = stats["median"] - spread, stats["median"] + spread
        statistics[f"outliers.{column}"] = stats | {"lower": lo, "upper": hi}
        bounds[column] = (-math.inf if lo is None else lo, math.inf if hi is None else hi)
    return bounds


def _outlier_actions(
    spec: CleanSpec,
    bounds: Mapping[str, tuple[float, float]],
    flags: Mapping[str, str],
    schema: Mapping[str, pl.DataType],
) -> list[pl.Expr]:
    out = []
    for column, (lo, hi) in bounds.items():
        action = spec.outliers[column].action
        if action == "flag":
            out.append(pl.col(flags[column]).alias(f"{column}_outlier"))
        elif action == "clip":
            if schema[column].is_integer() and math.isfinite(lo) and math.isfinite(hi):
                lo, hi = math.ceil(lo), math.floor(hi)
            if math.isfinite(lo) and math.isfinite(hi):
                out.append(pl.col(column).clip(lo, hi))
    return out
