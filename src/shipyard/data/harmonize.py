"""Per-source harmonization into canonical column names, types, values and units.

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
so ``_failed_checks`` exists from harmonization on, not only in quarantine frames. A cast
treats blank strings as missing, not as failures; a value map compares the text as it is (map
``""`` to null to treat blanks as missing). ``drop``/``select`` never remove ``_``-columns.

Combining the harmonized sources (union, join, as-of join) is ``shipyard.data.combine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.dtypes import to_polars, type_name

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")
FAILED = "_failed_checks"
BOOKKEEPING = ("_source", "_row", FAILED)
_CFG = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
EMPTY_CHECKS = pl.lit([], dtype=pl.List(pl.String))  # a row that failed nothing
_TEMPORAL = ("date", "datetime", "datetime_utc")
# Tried in order when a date/datetime cast names no format ("YYYY-MM-DD HH:MM" becomes "…T…").
ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}

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
        for column, mapping in value.items() if isinstance(value, dict) else ():
            bad = (
                [k for k in mapping if not isinstance(k, str)] if isinstance(mapping, dict) else []
            )
            if bad:
                raise ValueError(
                    f"map.{column}: keys must be strings, got {bad!r}; quote them in YAML "
                    "('Y', 'yes', '1': unquoted Y/yes/no/1 are read as booleans or numbers)"
                )
        return value


@dataclass(frozen=True)
class HarmonizeReport:
    """What ``harmonize`` did to one source (``rows`` is ``None``, counts empty: not counted)."""

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
        rule = _rule(raw)
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
    columns = list(read_schema(lf, source))

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
        lf = lf.with_columns(EMPTY_CHECKS.alias(FAILED))

    mapped = present("map", list(spec.map))
    lf = _apply(lf, "map", {c: _map_expr(c, spec) for c in mapped})
    rules = {c: _rule(spec.cast[c]) for c in present("cast", list(spec.cast))}
    schema = read_schema(lf, source) if rules or spec.units else {}
    lf = _apply(lf, "cast", {c: _cast_expr(c, schema[c], r) for c, r in rules.items()})
    schema.update({c: to_polars(r.type) for c, r in rules.items()})

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

    lf = lf.drop([c for c in spec.drop if c in columns and c not in BOOKKEEPING])  # lenient
    if spec.select is not None:
        keep = present("select", spec.select)
        lf = lf.select(*keep, *(c for c in dict.fromkeys([*columns, FAILED]) if c in BOOKKEEPING))

    names = [f"harmonize.cast.{c}" for c in rules] + [f"harmonize.map.{c}" for c in mapped]
    rows, counts = _count(lf, names, source) if count else (None, {})
    report = HarmonizeReport(
        source=source,
        rows=rows,
        cast_failures={c: counts[f"harmonize.cast.{c}"] for c in rules if count},
        unmapped={c: counts[f"harmonize.map.{c}"] for c in mapped if count},
        added=added,
        warnings=tuple(warnings),
    )
    return HarmonizeResult(frame=lf, report=report)


def read_schema(lf: pl.LazyFrame, source: str) -> dict[str, pl.DataType]:
    """The frame's schema; errors reading the data become ``InvalidData`` naming the source."""
    return dict(_read(lf.collect_schema, source))


def _read(run: Callable[[], _T], source: str) -> _T:
    """Run a Polars action; errors reading the data become ``InvalidData`` naming the source."""
    try:
        return run()
    except pl.exceptions.PolarsError as exc:
        raise InvalidData(f"source {source!r}: cannot read the data: {exc}") from exc


def _count(lf: pl.LazyFrame, names: list[str], source: str) -> tuple[int, dict[str, int]]:
    """The number of rows, and of rows listing each check, in one aggregation."""
    sums = [pl.col(FAILED).list.contains(n).sum().alias(n) for n in names]
    row = _read(lf.select(pl.len().alias("__rows"), *sums).collect, source).row(0, named=True)
    return int(row.pop("__rows")), {n: int(v) for n, v in row.items()}


def _rule(raw: str | CastRule) -> CastRule:
    return CastRule(type=raw) if isinstance(raw, str) else raw


@dataclass(frozen=True)
class _Change:
    """How one column changes: ``value`` and ``failed`` are functions of ``text``.

    ``_apply`` computes ``text`` once into a temporary column, then the new values from it,
    then the failure flags from the temporary and the new column, so that no expression is
    evaluated twice (Polars would otherwise compute each cast once for the value and once more
    for its flag).
    """

    text: pl.Expr  # the input, prepared (cast to text, stripped)
    value: Callable[[pl.Expr], pl.Expr]  # text -> new value (null where it fails)
    failed: Callable[[pl.Expr, pl.Expr], pl.Expr]  # (text, new value) -> failed


def _apply(lf: pl.LazyFrame, step: str, changes: dict[str, _Change]) -> pl.LazyFrame:
    """Replace each column by its new value; list ``harmonize.<step>.<column>`` where it failed."""
    if not changes:
        return lf
    taken = set(lf.collect_schema().names())
    temp: dict[str, str] = {}
    for i, column in enumerate(changes):
        name = f"__harmonize_{step}_{i}"
        while name in taken:
            name = f"_{name}"
        temp[column] = name
    lf = lf.with_columns(change.text.alias(temp[c]) for c, change in changes.items())
    lf = lf.with_columns(change.value(pl.col(temp[c])).alias(c) for c, change in changes.items())
    flags = [
        pl.when(change.failed(pl.col(temp[c]), pl.col(c))).then(pl.lit(f"harmonize.{step}.{c}"))
        for c, change in changes.items()
    ]
    failed = pl.concat_list(
        [pl.col(FAILED).fill_null(EMPTY_CHECKS), pl.concat_list(flags).list.drop_nulls()]
    )
    return lf.with_columns(failed.alias(FAILED)).drop(list(temp.values()))


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


def _map_expr(column: str, spec: HarmonizeSpec) -> _Change:
    """The mapped value of the column's text form, and 'value not in the map' (unless keep)."""
    mapping = spec.map[column]
    keys, targets = list(mapping), list(mapping.values())
    if spec.map_default == "keep":
        return _Change(
            pl.col(column).cast(pl.String),
            lambda text: text.replace_strict(keys, targets, default=text, return_dtype=pl.String),
            lambda _text, _value: pl.lit(value=False),
        )
    dtype = _map_dtype(targets)
    return _Change(
        pl.col(column).cast(pl.String),
        lambda text: text.replace_strict(keys, targets, default=None, return_dtype=dtype),
        lambda text, _value: text.is_not_null() & ~text.is_in(keys),
    )


def _cast_expr(column: str, source: pl.DataType, rule: CastRule) -> _Change:
    """The cast value (null where it does not parse) and 'had a value but did not parse'."""
    dtype = to_polars(rule.type)
    name = type_name(dtype)
    col = pl.col(column)
    if not (source == pl.String or isinstance(source, pl.Categorical | pl.Enum)):
        return _Change(
            col,
            lambda value: value.cast(dtype, strict=False),
            lambda value, cast: value.is_not_null() & cast.is_null(),
        )

    def parse(stripped: pl.Expr) -> pl.Expr:
        text: pl.Expr = pl.when(stripped != "").then(stripped)  # blank: missing
        if name in _TEMPORAL:
            return _parse_time(text, rule.format, name)
        if name == "bool":
            return text.str.to_lowercase().replace_strict(_BOOL_TEXT, default=None)
        if rule.decimal_comma:
            text = text.str.replace_all(r"[.\s]", "").str.replace(",", ".", literal=True)
        return text.cast(dtype, strict=False)

    return _Change(
        col.cast(pl.String).str.strip_chars(),
        parse,
        lambda stripped, value: stripped.is_not_null() & (stripped != "") & value.is_null(),
    )


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
