"""Generalization rules: replace a value by a coarser one that many people share.

Each rule is a small pydantic model with a ``kind`` tag, so a project file writes them as
``{kind: band, width: 10}``; ``generalize_expr`` turns one into a Polars expression for a
column of a given type. The rules, all applied to the original values:

* ``band``: numbers into bands of ``width``: integers become ``"30-39"`` labels, floats
  ``"30.0-40.0"`` (the upper bound excluded); with ``cap``, every value at or above it becomes
  ``"90+"`` (HIPAA's rule for ages over 89).
* ``truncate``: the first ``keep`` characters of the value as text (postcode ``SW1A 1AA`` with
  ``keep: 3`` becomes ``SW1``).
* ``date``: dates and datetimes to the first day of their ``month`` or ``year`` (type kept).
* ``round``: numbers to the nearest multiple of ``step`` (halves away from zero); an integer
  column with an integer step stays integer.
* ``redact``: every value becomes null: the last rung of a k-anonymity ladder.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shipyard.core.errors import InvalidArgument


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandRule(_Rule):
    """Numbers into bands of ``width``, e.g. ages 30-39."""

    kind: Literal["band"] = "band"
    width: float = Field(gt=0, allow_inf_nan=False)
    cap: float | None = Field(None, allow_inf_nan=False)


class TruncateRule(_Rule):
    """The first ``keep`` characters, e.g. the outward part of a postcode."""

    kind: Literal["truncate"] = "truncate"
    keep: int = Field(ge=0)


class DateRule(_Rule):
    """Dates and datetimes to the start of their month or year."""

    kind: Literal["date"] = "date"
    to: Literal["month", "year"]


class RoundRule(_Rule):
    """Numbers to the nearest multiple of ``step``."""

    kind: Literal["round"] = "round"
    step: float = Field(gt=0, allow_inf_nan=False)


class RedactRule(_Rule):
    """Every value to null."""

    kind: Literal["redact"] = "redact"


GeneralizeRule = Annotated[
    BandRule | TruncateRule | DateRule | RoundRule | RedactRule, Field(discriminator="kind")
]
_RULE = TypeAdapter(GeneralizeRule)


def parse_rule(rule: GeneralizeRule | dict[str, Any]) -> GeneralizeRule:
    """Return ``rule`` as a rule model (dicts such as ``{"kind": "band", "width": 10}``).

    Raises:
        InvalidArgument: The dict is not a valid rule.
    """
    if isinstance(rule, BandRule | TruncateRule | DateRule | RoundRule | RedactRule):
        return rule
    try:
        return _RULE.validate_python(rule)
    except ValidationError as e:
        raise InvalidArgument(
            f"invalid generalization rule {rule!r}: {e.errors()[0]['msg']}; kinds are band "
            "(width), truncate (keep), date (to: month|year), round (step), redact"
        ) from e


def generalize_expr(column: str, rule: GeneralizeRule, dtype: pl.DataType) -> pl.Expr:
    """Return the expression that generalizes ``column`` (of type ``dtype``) by ``rule``.

    Raises:
        InvalidArgument: The rule does not apply to the column's type (a band on text, a date
            rule on a number, ...).
    """
    col = pl.col(column)
    if isinstance(rule, RedactRule):
        return pl.when(pl.lit(False)).then(col).alias(column)  # nulls, one per row
    if isinstance(rule, TruncateRule):
        return col.cast(pl.String).str.slice(0, rule.keep).alias(column)
    if isinstance(rule, DateRule):
        if not dtype.is_temporal() or dtype in (pl.Time, pl.Duration):
            raise InvalidArgument(
                f"column {column!r} is {dtype}, not a date or datetime: cast it first "
                "(clean: coerce) to generalize it to a month or year"
            )
        return col.dt.truncate("1mo" if rule.to == "month" else "1y").alias(column)
    if not dtype.is_numeric():
        raise InvalidArgument(
            f"a {rule.kind} rule needs a numeric column; {column!r} is {dtype} "
            "(use truncate for text)"
        )
    if isinstance(rule, RoundRule):
        rounded = (col / rule.step).round(0, mode="half_away_from_zero") * rule.step
        if dtype.is_integer() and float(rule.step).is_integer():
            rounded = rounded.cast(dtype)
        return rounded.alias(column)
    return _band(col, rule, integer=dtype.is_integer()).alias(column)


def _band(col: pl.Expr, rule: BandRule, *, integer: bool) -> pl.Expr:
    width = rule.width
    low = (col / width).floor() * width
    if integer and float(width).is_integer():
        low_int = low.cast(pl.Int64)
        label = pl.concat_str([low_int, pl.lit("-"), low_int + (int(width) - 1)])
    else:
        label = pl.concat_str([low.cast(pl.Float64), pl.lit("-"), low.cast(pl.Float64) + width])
    if rule.cap is None:
        return label
    cap = rule.cap
    shown = str(int(cap)) if float(cap).is_integer() and not math.isinf(cap) else str(cap)
    return pl.when(col >= cap).then(pl.lit(f"{shown}+")).otherwise(label)
