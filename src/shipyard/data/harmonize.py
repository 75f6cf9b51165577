"""Per-source harmonization into canonical columns, and combining the harmonized sources.

``harmonize`` runs the ``harmonize:`` block of one source, in this order: rename → defaults →
map → cast → units → fill_null → drop/select. Names after ``rename`` are canonical, so every
later step uses them. ``defaults`` only adds a column the source lacks (the value then goes
through map/cast/units like source data); ``fill_null`` fills nulls of the final column (its
value is in the final type and unit) and runs after the checks below, so it never hides them.

Bad values never crash a run. A value that does not parse (``cast``) or has no entry in its
value map (``map`` with ``map_default: null``) becomes null, is counted per column in the
report, and its row gets ``harmonize.cast.<column>`` / ``harmonize.map.<column>`` appended to
``_failed_checks`` (List[String], always added, empty when the row is clean). Validation
appends its own check names to that list and quarantines every row whose list is non-empty,
so ``_failed_checks`` exists from harmonization on, not only in quarantine frames. Blank
strings count as missing, not as failures. ``drop``/``select`` never remove ``_``-columns.

``combine`` unions, joins and as-of joins harmonized frames. A left or m:1 join never changes
the number of rows; inner joins drop unmatched rows and outer joins add right-only rows, so
row accounting (docs/data.md) starts after ``combine``. ``validate: m:1`` (the default) reads
the right side once to check that its keys are unique; ``m:m`` allows row multiplication.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.dtypes import DTYPES, to_polars, type_name

FAILED = "_failed_checks"
BOOKKEEPING = ("_source", "_row", FAILED)
_CFG = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
_EMPTY = pl.lit([], dtype=pl.List(pl.String))
_TEMPORAL = ("date", "datetime", "datetime_utc")
# Tried in order when a date/datetime cast names no format ("YYYY-MM-DD HH:MM" becomes "…T…").
ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
_TOLERANCE = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w))+$")

# (from, to) -> (pre, numerator, denominator, post): to = (from + pre) * numerator / denominator
# + post. Ratios of integers keep results exact: 1234 cents is 12.34, 212 F is 100 C.
CONVERSIONS: dict[tuple[str, str], tuple[float, int, int, float]] = {
    ("cents", "units"): (0, 1, 100, 0),
    ("g", "kg"): (0, 1, 1000, 0),
    ("lb", "kg"): (0, 45_359_237, 100_000_000, 0),
    ("F", "C"): (-32, 5, 9, 0),
    ("ms", "s"): (0, 1, 1000, 0),
}
CONVERSIONS.update(
    {(b, a): (-post, d, n, -pre) for (a, b), (pre, n, d, post) in list(CONVERSIONS.items())}
)


class CastRule(BaseModel):
    """``{type, format, decimal_comma}``: a cast with parsing options."""

    model_config = _CFG
    type: str
    format: str | list[str] | None = None  # strptime; several: the first that parses wins
    decimal_comma: bool = False  # "1.234,5" → 1234.5 (dots and spaces are thousands separators)


class MultiplyUnit(BaseModel):
    """``{multiply: 0.01}``: scale by a factor (use ``from``/``to`` for exact decimal results)."""

    model_config = _CFG
    multiply: float


class ConvertUnit(BaseModel):
    """``{from: cents, to: units}``: a named conversion from ``CONVERSIONS``."""

    model_config = _CFG
    from_: str = Field(alias="from")
    to: str


class HarmonizeSpec(BaseModel):
    """The ``harmonize:`` block of one source (see the module docstring for the order)."""

    model_config = _CFG
    rename: dict[str, str] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    map: dict[str, dict[str, Any]] = Field(default_factory=dict)
    map_default: Literal["null", "keep"] = "null"  # keep: unmapped values stay (string maps only)
    cast: dict[str, str | CastRule] = Field(default_factory=dict)
    units: dict[str, MultiplyUnit | ConvertUnit] = Field(default_factory=dict)
    fill_null: dict[str, Any] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)  # missing columns are ignored
    select: list[str] | None = None  # keep only these (and the `_` columns), in this order

    @field_validator("map", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        for column, mapping in (value or {}).items():
            bad = [k for k in (mapping or {}) if not isinstance(k, str)]
            if bad:
                raise ValueError(
                    f"map.{column}: keys must be strings, got {bad!r}; quote them in YAML "
                    "('Y', 'yes', '1': unquoted Y/yes/no/1 are read as booleans or numbers)"
                )
        return value


@dataclass(frozen=True)
class HarmonizeReport:
    """What ``harmonize`` did to one source; counts are ``None`` when not counted."""

    source: str
    rows: int | None
    cast_failures: dict[str, int]  # column -> values that did not parse (now null)
    unmapped: dict[str, int]  # column -> values missing from the value map (now null)
    added: tuple[str, ...]  # columns added from `defaults`
    warnings: tuple[str, ...]  # skipped steps under on_schema_drift: adapt

    @property
    def failed_values(self) -> int:
        """All values that became null because they failed a cast or a value map."""
        return sum(self.cast_failures.values()) + sum(self.unmapped.values())


@dataclass(frozen=True)
class HarmonizeResult:
    """The harmonized frame (lazy) and its report."""

    frame: pl.LazyFrame
    report: HarmonizeReport


def check_spec(spec: HarmonizeSpec, *, source: str) -> None:
    """Check what pydantic cannot: type names, conversions, value-map targets.

    Raises:
        InvalidArgument: The message names the source, the setting and the fix.
    """
    where = f"source {source!r}: harmonize"
    for column in [*spec.rename.values(), *spec.defaults, *spec.map, *spec.cast, *spec.units]:
        if column in BOOKKEEPING:
            raise InvalidArgument(f"{where}: {column!r} is a bookkeeping column; use another name")
    for column, raw in spec.cast.items():
        rule = CastRule(type=raw) if isinstance(raw, str) else raw
        try:
            name = type_name(to_polars(rule.type))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}.cast.{column}: {exc}") from None
        if rule.format is not None and name not in _TEMPORAL:
            raise InvalidArgument(f"{where}.cast.{column}: format needs type date or datetime")
        if rule.decimal_comma and not to_polars(rule.type).is_numeric():
            raise InvalidArgument(f"{where}.cast.{column}: decimal_comma needs a numeric type")
    for column, mapping in spec.map.items():
        dtype = _map_dtype(list(mapping.values()))
        if dtype is None:
            raise InvalidArgument(f"{where}.map.{column}: mix of value types; use one type")
        if spec.map_default == "keep" and dtype != pl.String:
            raise InvalidArgument(
                f"{where}.map.{column}: map_default keep needs string values (unmapped text is "
                "kept); map to strings and cast afterwards, or use map_default: null"
            )
    for column, unit in spec.units.items():
        if isinstance(unit, ConvertUnit) and (unit.from_, unit.to) not in CONVERSIONS:
            known = ", ".join(f"{a}->{b}" for a, b in sorted(CONVERSIONS))
            raise InvalidArgument(
                f"{where}.units.{column}: unknown conversion {unit.from_!r} -> {unit.to!r}; "
                f"known: {known} (or use {{multiply: factor}})"
            )


def harmonize(
    lf: pl.LazyFrame,
    spec: HarmonizeSpec,
    *,
    source: str,
    on_schema_drift: Literal["fail", "adapt"] = "fail",
    count: bool = True,
) -> HarmonizeResult:
    """Bring one source's frame to canonical column names, types, values and units.

    With ``count`` (the default) the failure counts and row count are computed by one
    aggregation over the frame (which reads the source once); without, they are ``None``/empty
    and validation counts the same failures from ``_failed_checks``.

    Raises:
        InvalidArgument: The spec is inconsistent (see ``check_spec``).
        InvalidData: A column the spec names is missing (unless ``on_schema_drift`` is
            ``adapt``: then the step is skipped with a warning), or the data cannot be read.
    """
    check_spec(spec, source=source)
    warnings: list[str] = []
    columns = list(_schema(lf, source))

    def present(step: str, wanted: list[str]) -> list[str]:
        missing = [c for c in wanted if c not in columns]
        for column in missing:
            fix = (
                "update the key under sources.{s}.harmonize.rename to the column's new name"
                if step == "rename"
                else "fix the name under sources.{s}.harmonize." + step
            ).format(s=source)
            message = (
                f"source {source!r}: harmonize.{step} expects column {column!r}, which the data "
                f"does not have (columns: {', '.join(columns)})"
            )
            if on_schema_drift == "fail":
                raise InvalidData(f"{message}; {fix}, or set on_schema_drift: adapt")
            warnings.append(f"{message}; skipped (on_schema_drift: adapt)")
        return [c for c in wanted if c in columns]

    rename = {old: spec.rename[old] for old in present("rename", list(spec.rename))}
    columns = [rename.get(c, c) for c in columns]
    clashes = sorted({c for c in columns if columns.count(c) > 1})
    if clashes:
        raise InvalidData(
            f"source {source!r}: harmonize.rename makes duplicate columns {clashes}; rename or "
            f"drop the other column under sources.{source}.harmonize"
        )
    added = tuple(c for c in spec.defaults if c not in columns)
    lf = lf.rename(rename).with_columns(pl.lit(spec.defaults[c]).alias(c) for c in added)
    columns += added
    if FAILED not in columns:
        lf = lf.with_columns(_EMPTY.alias(FAILED))

    mapped = present("map", list(spec.map))
    if mapped:
        values, flags = {}, {}
        for column in mapped:
            values[column], flags[f"harmonize.map.{column}"] = _map_expr(column, spec)
        lf = lf.with_columns(*(v.alias(c) for c, v in values.items()), _append_failed(flags))

    casts = present("cast", list(spec.cast))
    schema = _schema(lf, source) if casts or spec.units else {}
    if casts:
        values, flags = {}, {}
        for column in casts:
            raw = spec.cast[column]
            rule = CastRule(type=raw) if isinstance(raw, str) else raw
            value, failed = _cast_expr(column, schema[column], rule)
            values[column], flags[f"harmonize.cast.{column}"] = value, failed
            schema[column] = to_polars(rule.type)
        lf = lf.with_columns(*(v.alias(c) for c, v in values.items()), _append_failed(flags))

    unit_exprs = []
    for column in present("units", list(spec.units)):
        if not schema[column].is_numeric():
            raise InvalidData(
                f"source {source!r}: harmonize.units.{column} needs a number but {column!r} is "
                f"{type_name(schema[column])}; add `{column}: float64` under "
                f"sources.{source}.harmonize.cast"
            )
        unit_exprs.append(_unit_expr(column, spec.units[column]).alias(column))
    lf = lf.with_columns(unit_exprs)
    fills = present("fill_null", list(spec.fill_null))
    lf = lf.with_columns(pl.col(c).fill_null(spec.fill_null[c]) for c in fills)

    lf = lf.drop([c for c in spec.drop if c in columns and c not in BOOKKEEPING])
    if spec.select is not None:
        keep = present("select", spec.select)
        lf = lf.select(*keep, *(c for c in dict.fromkeys([*columns, FAILED]) if c in BOOKKEEPING))

    counts: dict[str, int] = {}
    rows = None
    if count:
        names = [f"harmonize.map.{c}" for c in mapped] + [f"harmonize.cast.{c}" for c in casts]
        totals = _collect(
            lf.select(
                pl.len().alias("__rows"),
                *(pl.col(FAILED).list.contains(n).sum().alias(n) for n in names),
            ),
            source,
        ).row(0, named=True)
        rows = int(totals.pop("__rows"))
        counts = {name: int(value) for name, value in totals.items()}
    report = HarmonizeReport(
        source=source,
        rows=rows,
        cast_failures={c: counts[f"harmonize.cast.{c}"] for c in casts if counts},
        unmapped={c: counts[f"harmonize.map.{c}"] for c in mapped if counts},
        added=added,
        warnings=tuple(warnings),
    )
    return HarmonizeResult(frame=lf, report=report)


def _schema(lf: pl.LazyFrame, source: str) -> dict[str, pl.DataType]:
    try:
        return dict(lf.collect_schema())
    except pl.exceptions.PolarsError as exc:
        raise InvalidData(f"source {source!r}: cannot read the data: {exc}") from exc


def _collect(lf: pl.LazyFrame, source: str) -> pl.DataFrame:
    try:
        return lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise InvalidData(f"source {source!r}: cannot read the data: {exc}") from exc


def _append_failed(flags: dict[str, pl.Expr]) -> pl.Expr:
    """``_failed_checks`` plus the name of every flag that is true on the row."""
    new = pl.concat_list([pl.when(f).then(pl.lit(n)) for n, f in flags.items()]).list.drop_nulls()
    return pl.concat_list([pl.col(FAILED).fill_null(_EMPTY), new]).alias(FAILED)


def _map_dtype(values: list[Any]) -> pl.DataType | None:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {str}:
        return pl.String()
    if kinds == {bool}:
        return pl.Boolean()
    if kinds <= {int}:
        return pl.Int64()
    if kinds <= {int, float}:
        return pl.Float64()
    return None


def _map_expr(column: str, spec: HarmonizeSpec) -> tuple[pl.Expr, pl.Expr]:
    """The mapped value of the column's text form, and 'value not in the map' (unless keep)."""
    mapping = spec.map[column]
    text = pl.col(column).cast(pl.String)
    keys, targets = list(mapping), list(mapping.values())
    if spec.map_default == "keep":
        return text.replace_strict(keys, targets, default=text, return_dtype=pl.String), pl.lit(
            False
        )
    dtype = _map_dtype(targets)
    value = text.replace_strict(keys, targets, default=None, return_dtype=dtype)
    return value, text.is_not_null() & ~text.is_in(keys)


def _cast_expr(column: str, source: pl.DataType, rule: CastRule) -> tuple[pl.Expr, pl.Expr]:
    """The cast value (null where it does not parse) and 'had a value but did not parse'."""
    dtype = to_polars(rule.type)
    name = type_name(dtype)
    col = pl.col(column)
    if source == pl.String or isinstance(source, pl.Categorical | pl.Enum):
        stripped = col.cast(pl.String).str.strip_chars()
        text: pl.Expr = pl.when(stripped != "").then(stripped)
        if name in _TEMPORAL:
            value = _parse_time(text, rule.format, name)
        elif name == "bool":
            value = text.str.to_lowercase().replace_strict(_BOOL_TEXT, default=None)
        else:
            if rule.decimal_comma:
                text = text.str.replace_all(r"[.\s]", "").str.replace(",", ".", literal=True)
            value = text.cast(dtype, strict=False)
        return value, text.is_not_null() & value.is_null()
    value = col.cast(dtype, strict=False)
    return value, col.is_not_null() & value.is_null()


def _parse_time(text: pl.Expr, fmt: str | list[str] | None, name: str) -> pl.Expr:
    """Parse with each format in turn (ISO 8601 by default); offsets are converted to UTC."""
    if fmt is None:
        text = text.str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
    formats = ISO_FORMATS if fmt is None else [fmt] if isinstance(fmt, str) else fmt
    parsed = pl.coalesce(
        [text.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False) for f in formats]
    )
    if name == "date":
        return parsed.dt.date()
    return parsed.dt.replace_time_zone(None) if name == "datetime" else parsed


def _unit_expr(column: str, unit: MultiplyUnit | ConvertUnit) -> pl.Expr:
    value = pl.col(column).cast(pl.Float64)
    if isinstance(unit, MultiplyUnit):
        return value * unit.multiply
    pre, numerator, denominator, post = CONVERSIONS[(unit.from_, unit.to)]
    return (value + pre) * numerator / denominator + post


# ── combine ───────────────────────────────────────────────────────────────────────────────


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
    schemas = {name: _schema(lf, name) for name, lf in frames.items()}
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
    return out.with_columns(pl.col(FAILED).fill_null(_EMPTY)) if FAILED in target else out


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
    exprs = []
    for column in BOOKKEEPING:
        right = f"__right{column}"
        if right not in names:
            continue
        if column == FAILED:
            base = pl.col(FAILED).fill_null(_EMPTY) if FAILED in left else _EMPTY
            exprs.append(pl.concat_list([base, pl.col(right).fill_null(_EMPTY)]).alias(FAILED))
        elif column in left:
            exprs.append(pl.coalesce(column, right).alias(column))
    return out.with_columns(exprs).drop([f"__right{c}" for c in BOOKKEEPING], strict=False)


def _join(left: pl.LazyFrame, right: pl.LazyFrame, spec: JoinSpec) -> pl.LazyFrame:
    keys = [spec.on] if isinstance(spec.on, str) else spec.on
    ls, rs = _schema(left, "combined"), _schema(right, spec.source)
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
    ls, rs = _schema(left, "combined"), _schema(right, spec.source)
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
