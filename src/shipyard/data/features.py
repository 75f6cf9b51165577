"""The ``features:`` step: deterministic, row-wise features added as new columns.

Each entry maps a new column name to one feature:

=====================================================  =======================================
``{date_part: {column, part}}``                        ``year``, ``month``, ``day``, ``hour``,
                                                       ``weekday`` (ISO: Monday 1 .. Sunday 7),
                                                       ``dayofyear`` (1..366), ``week`` (ISO
                                                       week, 1..53); Int32
``{ratio: [a, b]}``                                    ``a / b`` as Float64; null where ``b`` is
                                                       0 or null (never ``inf``/``NaN`` from 0)
``{log1p: column}``                                    ``ln(1 + x)``; null where ``x <= -1``
``{log: column}``                                      ``ln(x)``; null where ``x <= 0``
``{bucket: {column, edges, labels, output}}``          right-closed bins ``(-inf, e0], (e0, e1],
                                                       … (en, inf)``; ``output: label`` (default;
                                                       ``labels`` or ``"(0, 10]"``, an Enum) or
                                                       ``index`` (UInt32, 0 for the first bin)
``{text_length: column}``                              characters (not bytes), UInt32
``{contains: {column, text, case_sensitive}}``         literal substring test (Boolean);
                                                       case-insensitive unless told
=====================================================  =======================================

Nulls in give nulls out. Features read only the input columns (not each other), so their
order never matters, and all are added in one ``with_columns``.

Why nothing here is *fitted*: a feature computed from one row alone gives the same value
whichever rows are in the dataset, so it can be computed once, before the train/test split,
and again at serving time, identically. Scalers, target or frequency encoders, PCA and the
like learn from the data they transform; computing them here, over the whole dataset, would
leak test rows into training and bake one dataset's statistics into a dataset version.
They belong to the training step, fitted on the training split and saved with the model.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Discriminator, Field, RootModel, Tag, model_validator

from shipyard.core.errors import InvalidArgument, InvalidData
from shipyard.data.windows import WindowDef, WindowFeature

if TYPE_CHECKING:
    from collections.abc import Mapping

_CFG = ConfigDict(extra="forbid", frozen=True)
DatePart = Literal["year", "month", "day", "weekday", "hour", "dayofyear", "week"]


class DatePartArgs(BaseModel):
    """``{column, part}``."""

    model_config = _CFG
    column: str
    part: DatePart


class BucketArgs(BaseModel):
    """``{column, edges, labels, output}``: ``labels`` has one more entry than ``edges``."""

    model_config = _CFG
    column: str
    edges: list[float] = Field(min_length=1)
    labels: list[str] | None = None
    output: Literal["label", "index"] = "label"

    @model_validator(mode="after")
    def _consistent(self) -> BucketArgs:
        if any(a >= b for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bucket edges {self.edges} must be strictly increasing")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError(f"bucket labels {self.labels} must be distinct")
        if self.labels is not None and len(self.labels) != len(self.edges) + 1:
            raise ValueError(
                f"bucket: {len(self.edges)} edges make {len(self.edges) + 1} bins, "
                f"but {len(self.labels)} labels were given"
            )
        return self


class ContainsArgs(BaseModel):
    """``{column, text, case_sensitive}``."""

    model_config = _CFG
    column: str
    text: str = Field(min_length=1)
    case_sensitive: bool = False


class DatePartFeature(BaseModel):
    """``{date_part: {column, part}}``."""

    model_config = _CFG
    date_part: DatePartArgs


class RatioFeature(BaseModel):
    """``{ratio: [numerator, denominator]}``."""

    model_config = _CFG
    ratio: tuple[str, str]


class Log1pFeature(BaseModel):
    """``{log1p: column}``."""

    model_config = _CFG
    log1p: str


class LogFeature(BaseModel):
    """``{log: column}``."""

    model_config = _CFG
    log: str


class BucketFeature(BaseModel):
    """``{bucket: {column, edges, labels, output}}``."""

    model_config = _CFG
    bucket: BucketArgs


class TextLengthFeature(BaseModel):
    """``{text_length: column}``."""

    model_config = _CFG
    text_length: str


class ContainsFeature(BaseModel):
    """``{contains: {column, text, case_sensitive}}``."""

    model_config = _CFG
    contains: ContainsArgs


_KINDS = (
    "date_part",
    "ratio",
    "log1p",
    "log",
    "bucket",
    "text_length",
    "contains",
    "window",
)


def _kind(value: Any) -> str | None:
    """The feature kind: the single key of a mapping, or the model's field."""
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 and next(iter(value)) in _KINDS else None
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Feature = Annotated[
    Annotated[DatePartFeature, Tag("date_part")]
    | Annotated[RatioFeature, Tag("ratio")]
    | Annotated[Log1pFeature, Tag("log1p")]
    | Annotated[LogFeature, Tag("log")]
    | Annotated[BucketFeature, Tag("bucket")]
    | Annotated[TextLengthFeature, Tag("text_length")]
    | Annotated[ContainsFeature, Tag("contains")]
    | Annotated[WindowFeature, Tag("window")],
    Discriminator(
        _kind,
        custom_error_type="feature_kind",
        custom_error_message=f"a feature is a mapping with one key, one of: {', '.join(_KINDS)}",
    ),
]


class FeaturesSpec(RootModel[dict[str, Feature]]):
    """The ``features:`` step: new column name -> feature."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _names(self) -> FeaturesSpec:
        for name in self.root:
            if not name or name.startswith("_"):
                raise ValueError(f"feature {name!r}: names starting with _ are reserved")
        return self


def add_features(lf: pl.LazyFrame, spec: FeaturesSpec) -> pl.LazyFrame:
    """Add every feature of ``spec`` to ``lf`` as a new column (lazy, one ``with_columns``).

    Raises:
        InvalidArgument: A feature reads a missing column or one of the wrong type, or its name
            is already a column.
        InvalidData: The input's columns cannot be read.
    """
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as e:
        raise InvalidData(f"features: cannot read the input's columns: {e}") from e
    taken = sorted(set(spec.root) & set(schema))
    if taken:
        raise InvalidArgument(f"features {', '.join(taken)}: already columns; pick new names")
    rowwise = {name: f for name, f in spec.root.items() if not isinstance(f, WindowFeature)}
    out = lf.with_columns(_feature(name, f, schema).alias(name) for name, f in rowwise.items())
    windowed = window_defs(spec)
    if not windowed:
        return out
    from shipyard.data.window_features import add_window_features  # only with window features

    try:
        frame = out.collect()
    except pl.exceptions.PolarsError as e:
        raise InvalidData(f"features: cannot read the input: {e}") from e
    return add_window_features(frame, windowed).lazy()


def window_defs(spec: FeaturesSpec) -> list[WindowDef]:
    """The window features of ``spec``, resolved (the stream computes these too)."""
    return [WindowDef.of(n, f) for n, f in spec.root.items() if isinstance(f, WindowFeature)]


def _feature(name: str, feature: BaseModel, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    def column(col: str, kind: str) -> pl.Expr:
        if col not in schema:
            raise InvalidArgument(
                f"feature {name}: no column {col!r}; columns are {', '.join(schema)}"
            )
        dtype = schema[col]
        ok = {
            "numeric": dtype.is_numeric(),
            "temporal": dtype in (pl.Date, pl.Datetime),
            "datetime": dtype == pl.Datetime,
            "text": dtype in (pl.String, pl.Categorical),
        }[kind]
        if not ok:
            raise InvalidArgument(f"feature {name}: column {col!r} is {dtype}, needs {kind}")
        return pl.col(col)

    if isinstance(feature, DatePartFeature):
        args = feature.date_part
        x = column(args.column, "datetime" if args.part == "hour" else "temporal")
        parts = {
            "year": x.dt.year(),
            "month": x.dt.month(),
            "day": x.dt.day(),
            "weekday": x.dt.weekday(),
            "hour": x.dt.hour(),
            "dayofyear": x.dt.ordinal_day(),
            "week": x.dt.week(),
        }
        return parts[args.part].cast(pl.Int32)
    if isinstance(feature, RatioFeature):
        a, b = (column(c, "numeric").cast(pl.Float64) for c in feature.ratio)
        return pl.when(b != 0).then(a / b)
    if isinstance(feature, Log1pFeature):
        x = column(feature.log1p, "numeric").cast(pl.Float64)
        return pl.when(x > -1).then(x.log1p())
    if isinstance(feature, LogFeature):
        x = column(feature.log, "numeric").cast(pl.Float64)
        return pl.when(x > 0).then(x.log())
    if isinstance(feature, BucketFeature):
        args_ = feature.bucket
        x = column(args_.column, "numeric")
        index = pl.sum_horizontal([(x > edge).cast(pl.UInt32) for edge in args_.edges])
        index = pl.when(x.is_not_null()).then(index)
        if args_.output == "index":
            return index
        labels = args_.labels or _labels(args_.edges)
        return index.replace_strict(range(len(labels)), labels, return_dtype=pl.Enum(labels))
    if isinstance(feature, TextLengthFeature):
        return column(feature.text_length, "text").cast(pl.String).str.len_chars()
    assert isinstance(feature, ContainsFeature)
    args__ = feature.contains
    text = column(args__.column, "text").cast(pl.String)
    if args__.case_sensitive:
        return text.str.contains(args__.text, literal=True)
    return text.str.to_lowercase().str.contains(args__.text.lower(), literal=True)


def _labels(edges: list[float]) -> list[str]:
    """``(-inf, 0]``, ``(0, 10]``, ..., ``(1000, inf)``."""
    text = [str(int(e)) if float(e).is_integer() else repr(float(e)) for e in edges]
    pairs = list(itertools.pairwise(["-inf", *text, "inf"]))
    return [f"({a}, {b}]" for a, b in pairs[:-1]] + [f"({pairs[-1][0]}, inf)"]
