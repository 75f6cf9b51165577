"""Combining harmonized source frames into one: union, join and as-of join.

``combine`` runs the ``combine:`` section: first the union, then each join, then each as-of
join. A left or m:1 join never changes the number of rows; inner joins drop unmatched rows and
outer joins add right-only rows, so row accounting (docs/data.md) starts after ``combine``.
``validate: m:1`` (the default) reads the right side once to check that its keys are unique;
``m:m`` allows row multiplication. The ``_failed_checks`` lists that ``harmonize`` adds are
carried through: union fills missing lists with empty ones, and joins append the right row's
list to the left row's.
"""

from __future__ import annotations

import re
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.dtypes import DTYPES, type_name
from shipyard.data.harmonize import BOOKKEEPING, EMPTY_CHECKS, FAILED, read_schema

_CFG = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
_TOLERANCE = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w))+$")


class JoinSpec(BaseModel):
    """``{source, on, how, validate}``; ``validate: m:1`` refuses duplicate right-side keys."""

    model_config = _CFG
    source: str
    on: str | list[str]
    how: Literal["left", "inner", "outer"] = "left"
    validate_: Literal["m:1", "m:m"] = Field("m:1", alias="validate")


class AsofSpec(BaseModel):
    """``{source, on, by, tolerance, strategy}``: each left row gets the nearest right row."""

    model_config = _CFG
    source: str
    on: str  # time (or number) column in both frames
    by: str | list[str] | None = None  # match only within equal keys
    tolerance: str | int | float | None = None  # "5m", "2h", "1d" (or a number); inclusive
    strategy: Literal["backward", "forward", "nearest"] = "backward"

    @field_validator("tolerance")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, str) and not _TOLERANCE.match(value):
            raise ValueError(f"tolerance {value!r}: use a duration like 30s, 5m, 2h, 1d or 1w")
        return value


class CombineSpec(BaseModel):
    """The ``combine:`` section: union first, then each join, then each as-of join."""

    model_config = _CFG
    union: list[str] = Field(min_length=1)
    join: list[JoinSpec] = Field(default_factory=list)
    asof: list[AsofSpec] = Field(default_factory=list)


def combine(frames: dict[str, pl.LazyFrame], spec: CombineSpec) -> pl.LazyFrame:
    """Union, join and as-of join harmonized source frames into one frame.

    Union aligns columns by name (missing → null) and widens numeric/temporal types; other type
    conflicts raise. Right-side columns whose names clash get ``_<source>`` appended; as-of
    joins also keep the matched right time as ``<on>_<source>``. Right-side ``_failed_checks``
    are appended to the left row's. As-of joins sort both sides by ``on`` (rows with a null
    right time never match) and return rows in the left frame's order.

    Raises:
        InvalidArgument: The spec names an unknown source, or one source twice.
        InvalidData: Columns are missing, types conflict, or right-side keys are duplicated.
    """
    used = [*spec.union, *(j.source for j in spec.join), *(a.source for a in spec.asof)]
    for name in used:
        if name not in frames:
            raise InvalidArgument(f"combine: unknown source {name!r}; known: {sorted(frames)}")
        if used.count(name) > 1:
            raise InvalidArgument(f"combine: source {name!r} is used twice; use it once")
    out = _union({name: frames[name] for name in spec.union})
    for join in spec.join:
        out = _join(out, frames[join.source], join)
    for asof in spec.asof:
        out = _asof(out, frames[asof.source], asof)
    return out


def _wider(a: pl.DataType, b: pl.DataType) -> pl.DataType | None:
    if a == pl.Null or b == pl.Null:
        return b if a == pl.Null else a
    families = (a.is_numeric() and b.is_numeric(), a.is_temporal() and b.is_temporal())
    strings = {a, b} <= {pl.String(), pl.Categorical()}
    if not (any(families) or strings):
        return None
    try:
        empty = [pl.DataFrame(schema={"x": a}), pl.DataFrame(schema={"x": b})]
        wide = pl.concat(empty, how="vertical_relaxed").schema["x"]
    except pl.exceptions.PolarsError:
        return None
    return wide if wide in DTYPES.values() else None


def _union(frames: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    schemas = {name: read_schema(lf, name) for name, lf in frames.items()}
    target: dict[str, tuple[pl.DataType, str]] = {}
    for name, schema in schemas.items():
        for column, dtype in schema.items():
            first, owner = target.get(column, (dtype, name))
            wide = first if first == dtype else _wider(first, dtype)
            if wide is None:
                raise InvalidData(
                    f"combine.union: column {column!r} is {type_name(first)} in source "
                    f"{owner!r} but {type_name(dtype)} in source {name!r}; add "
                    f"`{column}: {type_name(first)}` under sources.{name}.harmonize.cast"
                )
            target[column] = (wide, owner)
    parts = [
        lf.with_columns(
            pl.col(c).cast(target[c][0]) for c, t in schemas[n].items() if t != target[c][0]
        )
        for n, lf in frames.items()
    ]
    out = pl.concat(parts, how="diagonal")
    return out.with_columns(pl.col(FAILED).fill_null(EMPTY_CHECKS)) if FAILED in target else out


def _check_columns(
    left: dict[str, pl.DataType],
    right: dict[str, pl.DataType],
    keys: list[str],
    what: str,
    source: str,
) -> None:
    for key in keys:
        for side, schema in (("the combined frame", left), (f"source {source!r}", right)):
            if key not in schema:
                raise InvalidData(
                    f"combine.{what} {source!r}: {side} has no column {key!r} "
                    f"(columns: {', '.join(schema)}); fix `on`/`by` or rename it in harmonize"
                )
        if left[key] != right[key]:
            raise InvalidData(
                f"combine.{what} {source!r}: column {key!r} is {type_name(left[key])} on the left "
                f"but {type_name(right[key])} in source {source!r}; add "
                f"`{key}: {type_name(left[key])}` under sources.{source}.harmonize.cast"
            )


def _check_unique(right: pl.LazyFrame, keys: list[str], source: str) -> None:
    """Raise when a key appears twice on the right side: a join would multiply rows."""
    dups = (
        right.drop_nulls(keys).group_by(keys).agg(pl.len().alias("__n")).filter(pl.col("__n") > 1)
    )
    try:
        total, examples = pl.collect_all([dups.select(pl.len()), dups.sort(keys).head(3)])
    except pl.exceptions.PolarsError as exc:
        raise InvalidData(f"source {source!r}: cannot read the data: {exc}") from exc
    if examples.height:
        shown = "; ".join(
            ", ".join(f"{k}={row[k]!r}" for k in keys) + f" ({row['__n']} rows)"
            for row in examples.iter_rows(named=True)
        )
        raise InvalidData(
            f"combine.join {source!r}: key {keys} is not unique in source {source!r} "
            f"({total.item()} duplicated keys, e.g. {shown}); a join would multiply rows. "
            f"Deduplicate {source!r} or set `validate: m:m` on this join to allow it"
        )


def _prepare_right(right: pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return right.rename({c: f"__right{c}" for c in BOOKKEEPING if c in schema})


def _merge_bookkeeping(out: pl.LazyFrame, left: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Fold the right side's bookkeeping columns into the left's after a join."""
    names = out.collect_schema().names()
    both = [c for c in ("_source", "_row") if c in left and f"__right{c}" in names]
    exprs = [pl.coalesce(c, f"__right{c}").alias(c) for c in both]
    failed = [pl.col(c).fill_null(EMPTY_CHECKS) for c in (FAILED, f"__right{FAILED}") if c in names]
    if failed:  # right-only rows of an outer join have no left list: fill, don't null
        exprs.append(pl.concat_list(failed).alias(FAILED))
    return out.with_columns(exprs).drop([f"__right{c}" for c in BOOKKEEPING], strict=False)


def _join(left: pl.LazyFrame, right: pl.LazyFrame, spec: JoinSpec) -> pl.LazyFrame:
    keys = [spec.on] if isinstance(spec.on, str) else spec.on
    ls, rs = read_schema(left, "combined"), read_schema(right, spec.source)
    _check_columns(ls, rs, keys, "join", spec.source)
    if spec.validate_ == "m:1":
        _check_unique(right, keys, spec.source)
    out = left.join(
        _prepare_right(right, rs),
        on=keys,
        how="full" if spec.how == "outer" else spec.how,
        suffix=f"_{spec.source}",
        validate=spec.validate_,
        coalesce=True,
        maintain_order="left_right" if spec.how == "outer" else "left",
    )
    return _merge_bookkeeping(out, ls)


def _asof(left: pl.LazyFrame, right: pl.LazyFrame, spec: AsofSpec) -> pl.LazyFrame:
    by = [spec.by] if isinstance(spec.by, str) else (spec.by or [])
    ls, rs = read_schema(left, "combined"), read_schema(right, spec.source)
    _check_columns(ls, rs, [spec.on, *by], "asof", spec.source)
    if spec.tolerance is not None and isinstance(spec.tolerance, str) != ls[spec.on].is_temporal():
        raise InvalidData(
            f"combine.asof {spec.source!r}: tolerance {spec.tolerance!r} does not fit column "
            f"{spec.on!r} ({type_name(ls[spec.on])}); use a duration for times, a number otherwise"
        )
    order = "__asof_order"
    right_sorted = _prepare_right(right, rs).drop_nulls(spec.on).sort(spec.on, maintain_order=True)
    out = (
        left.with_row_index(order)
        .sort(spec.on, nulls_last=True, maintain_order=True)
        .join_asof(
            right_sorted,
            on=spec.on,
            by=by or None,
            strategy=spec.strategy,
            tolerance=spec.tolerance,
            suffix=f"_{spec.source}",
            coalesce=False,
            check_sortedness=False,  # both sides are sorted just above
        )
        .sort(order)
        .drop(order)
    )
    return _merge_bookkeeping(out, ls)
