"""The ``contract:`` section: what a valid row and a valid batch look like.

A contract lists per-column rules (type, nullability, bounds, allowed values, regex,
uniqueness), compound unique keys, cross-column checks written as SQL expressions (parsed by
Polars, never by us), and two dataset-level checks (row count bounds, freshness). Every check
has a stable name, used in ``_failed_checks``, in reports and in error messages:

===========================  =============================================================
``<column>.type``            a non-blank value does not parse as the contract type
``<column>.not_null``        the value is missing (``nullable: false``)
``<column>.min`` / ``.max``  the value is below ``min`` / above ``max`` (bounds inclusive)
``<column>.allowed``         the value is not one of ``allowed``
``<column>.regex``           the value does not match ``regex`` (a search; anchor it)
``<column>.unique``          the value occurs more than once
``unique(<a>,<b>)``          the compound key occurs more than once
``check.<name>``             the SQL expression is false (null passes, as in SQL)
``row_count``                the batch has fewer than ``min`` or more than ``max`` rows
``freshness``                the newest value of ``column`` is older than ``max_age``
===========================  =============================================================

Each check's policy is its own ``policy`` (checks, row count, freshness), else its column's
``policy``, else the contract's ``policy`` (default ``quarantine``). Models are validated
when built: unknown types, bad regexes, SQL that does not parse and ``min > max`` raise
pydantic's ``ValidationError`` whose location names the column (the project-file loader
turns that into a message with a line number); ``parse_contract`` raises ``InvalidArgument``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shipyard.core.errors import InvalidArgument
from shipyard.data.dtypes import to_polars, type_name

if TYPE_CHECKING:
    from collections.abc import Mapping

Policy = Literal["fail", "quarantine", "warn"]
CheckKind = Literal["type", "not_null", "min", "max", "allowed", "regex", "unique", "check"]
Bound = int | float | date | datetime
Scalar = bool | int | float | str | date | datetime

_CFG = ConfigDict(extra="forbid", frozen=True)
_TEMPORAL = ("date", "datetime", "datetime_utc")
_ORDERED = ("int", "uint", "float", "date", "datetime")  # type-name prefixes min/max apply to
_TEXT = ("string", "category")
_CHECK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:w|d|h|m|s))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_BOOL_TEXT = {"true": True, "false": False, "1": True, "0": False}
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%.f%#z")


def _literals(values: list[Any], dtype: pl.DataType, what: str) -> pl.Series:
    """``values`` as a Series of ``dtype``; ValueError when they do not fit it."""
    fractional = dtype.is_integer() and any(
        isinstance(v, float) and not v.is_integer() for v in values
    )
    try:
        if not fractional:
            return pl.Series(values).cast(dtype, strict=True)
    except (pl.exceptions.PolarsError, TypeError, OverflowError):
        pass
    raise ValueError(f"{what} {values!r} do not fit type {type_name(dtype)}")


class ColumnRule(BaseModel):
    """One column's rules: ``{type, nullable, min, max, allowed, regex, unique, policy}``."""

    model_config = _CFG
    type: str
    nullable: bool = True
    min: Bound | None = None
    max: Bound | None = None
    allowed: list[Scalar] | None = Field(default=None, min_length=1)
    regex: str | None = None
    unique: bool = False
    policy: Policy | None = None

    @property
    def dtype(self) -> pl.DataType:
        """The Polars dtype of ``type``."""
        return to_polars(self.type)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnRule:
        try:
            dtype = self.dtype
        except InvalidArgument as e:
            raise ValueError(e.message) from None
        name = type_name(dtype)
        bounds: list[Any] = [b for b in (self.min, self.max) if b is not None]
        if bounds and not name.startswith(_ORDERED):
            raise ValueError(f"min/max need a numeric or temporal type, not {name}")
        numeric = dtype.is_numeric()
        if numeric and any(isinstance(b, date) for b in bounds):
            raise ValueError(f"min/max of a {name} column must be numbers")
        if bounds and not numeric:  # numeric bounds compare as numbers: min 0.5 on int64 is fine
            bounds = _literals(bounds, dtype, "min/max").to_list()
        if len(bounds) == 2:
            low, high = bounds
            if low > high:
                raise ValueError(f"min {self.min!r} is greater than max {self.max!r}")
        if self.allowed is not None:
            _literals(self.allowed, dtype, "allowed values")
        if self.regex is not None:
            if name not in _TEXT:
                raise ValueError(f"regex needs type string or category, not {name}")
            try:  # Polars' (Rust) regex dialect, checked by Polars itself
                pl.Series([""]).str.contains(self.regex)
            except pl.exceptions.PolarsError as e:
                reason = str(e).split("\n\nThis error occurred")[0]
                raise ValueError(f"regex {self.regex!r} does not compile: {reason}") from None
        return self


class CheckRule(BaseModel):
    """A cross-column check: ``{name, expr, policy}``; ``expr`` is a SQL boolean expression."""

    model_config = _CFG
    name: str
    expr: str = Field(min_length=1, max_length=10_000)
    policy: Policy | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _CHECK_NAME.match(value):
            raise ValueError(f"check name {value!r}: use letters, digits and _ (not first)")
        return value

    @model_validator(mode="after")
    def _parses(self) -> CheckRule:
        try:
            parse_check(self.expr)
        except ValueError as e:
            raise ValueError(f"check {self.name!r}: {e}") from None
        return self

    def to_expr(self) -> pl.Expr:
        """The check as a Polars expression (true where the row passes)."""
        return parse_check(self.expr)


def parse_check(sql: str) -> pl.Expr:
    """Parse one SQL boolean expression with Polars (``pl.sql_expr``).

    Statements (``1; DROP TABLE x``) and sub-queries are refused: a check sees one row.

    Raises:
        ValueError: The text is not a single SQL expression.
    """
    try:
        expr = pl.sql_expr(sql)
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"SQL expression {sql!r} does not parse: {e}") from None
    if ".subplan(" in str(expr):  # Polars' rendering of `(SELECT ...)`
        raise ValueError(f"SQL expression {sql!r}: sub-queries are not allowed in checks")
    return expr


class RowCountRule(BaseModel):
    """``{min, max, policy}``: bounds on the number of rows in the batch (inclusive)."""

    model_config = _CFG
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    policy: Policy | None = None

    @model_validator(mode="after")
    def _ordered(self) -> RowCountRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"row_count: min {self.min} is greater than max {self.max}")
        return self


class FreshnessRule(BaseModel):
    """``{column, max_age, policy}``: the newest ``column`` value is at most ``max_age`` old.

    ``max_age`` is ``30m``, ``6h``, ``2d``, ``1w``, combinations (``1d12h``), seconds, or an
    ISO 8601 duration (``P2D``).
    """

    model_config = _CFG
    column: str
    max_age: timedelta
    policy: Policy | None = None

    @field_validator("max_age", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and _DURATION.match(value.strip()):
            parts = _DURATION_PART.findall(value)
            return timedelta(**{_UNITS[u]: float(n) for n, u in parts})
        return value  # pydantic parses the rest (ISO 8601, seconds)

    @field_validator("max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("max_age must be positive")
        return value


@dataclass(frozen=True)
class CheckInfo:
    """One row-level check of a contract: its stable name, policy and what it is about."""

    name: str
    policy: Policy
    kind: CheckKind
    columns: tuple[str, ...]  # the column(s) it reads (empty for SQL checks)


class Contract(BaseModel):
    """The ``contract:`` section (see the module docstring for the check names)."""

    model_config = _CFG
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    unique: list[list[str]] = Field(default_factory=list)
    checks: list[CheckRule] = Field(default_factory=list)
    row_count: RowCountRule | None = None
    freshness: FreshnessRule | None = None
    policy: Policy = "quarantine"

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        for column in self.columns:
            if not column or column.startswith("__"):
                raise ValueError(f"column {column!r}: names starting with __ are reserved")
        for key in self.unique:
            if not key or len(set(key)) != len(key):
                raise ValueError(f"unique {key!r}: list one or more distinct columns")
        names = [c.name for c in self.checks]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"checks: names must be unique; repeated: {', '.join(doubled)}")
        if self.freshness is not None:
            rule = self.columns.get(self.freshness.column)
            if rule is None or type_name(rule.dtype) not in _TEMPORAL:
                raise ValueError(
                    f"freshness column {self.freshness.column!r} must be listed under "
                    "columns with type date, datetime or datetime_utc"
                )
        return self

    def row_checks(self) -> list[CheckInfo]:
        """Every row-level check in a stable order: per column, then keys, then SQL checks."""
        out: list[CheckInfo] = []
        for column, rule in self.columns.items():
            present: dict[CheckKind, bool] = {
                "type": True,
                "not_null": not rule.nullable,
                "min": rule.min is not None,
                "max": rule.max is not None,
                "allowed": rule.allowed is not None,
                "regex": rule.regex is not None,
                "unique": rule.unique,
            }
            policy = rule.policy or self.policy
            out += [
                CheckInfo(f"{column}.{kind}", policy, kind, (column,))
                for kind, on in present.items()
                if on
            ]
        for key in self.unique:
            out.append(CheckInfo(f"unique({','.join(key)})", self.policy, "unique", tuple(key)))
        for check in self.checks:
            out.append(CheckInfo(f"check.{check.name}", check.policy or self.policy, "check", ()))
        return out

    def dataset_checks(self) -> dict[str, Policy]:
        """The dataset-level checks present (``row_count``, ``freshness``) and their policies."""
        rules = {"row_count": self.row_count, "freshness": self.freshness}
        return {n: r.policy or self.policy for n, r in rules.items() if r is not None}


def lenient_cast(
    lf: pl.LazyFrame, targets: Mapping[str, pl.DataType], failed: Mapping[str, str]
) -> pl.LazyFrame:
    """Cast columns to ``targets`` without raising; mark the values that did not parse.

    Each column becomes its target type, null where it does not parse, and ``failed[column]``
    is a new boolean column: true where the input had a value that did not parse. Text is
    trimmed and blank text is missing, not a failure; booleans read ``true/false/1/0`` (any
    case); datetimes read ISO 8601 (``T`` or a space; seconds and fractions optional; offsets
    converted to UTC; a date alone is midnight); dates read ``YYYY-MM-DD``. Other formats
    belong to ``harmonize: cast`` with a ``format``. Other dtypes go through Polars' cast.

    Datetime formats are tried in turn, each only on what the ones before left unparsed (as
    columns, in steps): trying all of them on every value, or nesting them in one expression,
    made 2M ISO timestamps 5 to 10 times slower to parse than one format.
    """
    schema = lf.collect_schema()
    tmp = "__shipyard_cast_"
    text = {c: f"{tmp}t{i}" for i, c in enumerate(targets) if _is_text(schema[c])}
    iso = [c for c in text if type_name(targets[c]) in ("datetime", "datetime_utc")]
    lf = lf.with_columns(_text(c, iso=c in iso).alias(t) for c, t in text.items())
    parts: dict[str, list[str]] = {c: [] for c in iso}
    rest = {c: text[c] for c in iso}
    for k, fmt in enumerate(_ISO_FORMATS):
        utc = {c: type_name(targets[c]) == "datetime_utc" for c in iso}
        lf = lf.with_columns(
            _parse_iso(pl.col(rest[c]), fmt, utc=utc[c]).alias(f"{tmp}v{k}_{i}")
            for i, c in enumerate(iso)
        )
        for i, c in enumerate(iso):
            parts[c].append(f"{tmp}v{k}_{i}")
        if k + 1 < len(_ISO_FORMATS):
            nxt = {c: f"{tmp}r{k}_{i}" for i, c in enumerate(iso)}
            lf = lf.with_columns(
                pl.when(pl.col(parts[c][-1]).is_null()).then(pl.col(rest[c])).alias(nxt[c])
                for c in iso
            )
            rest = nxt
    values: list[pl.Expr] = []
    for column, target in targets.items():
        if column in iso:
            values.append(pl.coalesce(parts[column]).alias(column))
        elif column in text:
            values.append(_from_text(pl.col(text[column]), target).alias(column))
        else:
            value = pl.col(column).cast(target, strict=False)
            bad = pl.col(column).is_not_null() & value.is_null()
            values += [value.alias(column), bad.alias(failed[column])]
    lf = lf.with_columns(values)
    flags = [
        (pl.col(t).is_not_null() & pl.col(c).is_null()).alias(failed[c]) for c, t in text.items()
    ]
    lf = lf.with_columns(flags) if flags else lf
    temps = [c for c in lf.collect_schema() if c.startswith(tmp)]
    return lf.drop(temps) if temps else lf


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _text(column: str, *, iso: bool) -> pl.Expr:
    """Trimmed text, null where blank; for ISO datetimes a space after the date becomes T."""
    stripped = pl.col(column).cast(pl.String).str.strip_chars()
    text = pl.when(stripped != "").then(stripped)
    return text.str.replace(" ", "T", literal=True, n=1) if iso else text


def _from_text(text: pl.Expr, target: pl.DataType) -> pl.Expr:
    name = type_name(target)
    if name == "date":
        return text.str.to_date("%Y-%m-%d", strict=False)
    if name == "bool":
        return text.str.to_lowercase().replace_strict(
            _BOOL_TEXT, default=None, return_dtype=pl.Boolean
        )
    return text.cast(target, strict=False)


def _parse_iso(text: pl.Expr, fmt: str, *, utc: bool) -> pl.Expr:
    if fmt.endswith("%#z"):  # an offset: converted to UTC
        value = text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
        return value if utc else value.dt.replace_time_zone(None)
    value = text.str.to_datetime(fmt, time_unit="us", strict=False)
    return value.dt.replace_time_zone("UTC") if utc else value


def parse_contract(data: Any) -> Contract:
    """Build a ``Contract`` from the ``contract:`` mapping of a project file.

    Raises:
        InvalidArgument: One line per problem, each naming where it is (``columns.amount``).
    """
    try:
        return Contract.model_validate(data)
    except ValidationError as e:
        lines = []
        for item in e.errors()[:10]:
            where = "".join(f".{p}" for p in item["loc"])
            message = str(item["msg"]).removeprefix("Value error, ")
            lines.append(f"contract{where}: {message}")
        raise InvalidArgument("invalid contract:\n" + "\n".join(lines)) from None
