"""The bundle manifest: what a model takes, what it predicts, how good it is and where it came from.

A bundle without a contract is an error (RELIABILITY.md lesson 8): MLflow silently stored models
without a signature and serving then enforced nothing. The manifest therefore requires the input
features (name, contract type, nullability, the categories seen in training) and checks that
task, classes and threshold agree. Every model is ``extra="forbid"``: a manifest cannot smuggle in
fields such as extra trusted types, and readers never consult anything not declared here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shipyard.core.errors import InvalidData
from shipyard.data.dtypes import ALIASES, DTYPES, type_name

if TYPE_CHECKING:
    from collections.abc import Sequence

FORMAT_VERSION = 1
_STRICT = ConfigDict(extra="forbid", frozen=True)
_CATEGORY_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Boolean)


class FeatureField(BaseModel):
    """One input column of the model's contract.

    Attributes:
        name: Column name, as the model's input frame has it.
        dtype: A contract type name of ``shipyard.data.dtypes`` (``float64``, ``string``, ...).
        nullable: Whether the training rows had missing values here. It is a rule: a null (or
            NaN) in a ``nullable: false`` feature is refused on every path
            (``shipyard.registry.input_contract``), since the model never learned what a
            missing value there means.
        categories: The distinct values seen in training, as text, for string, categorical
            and boolean columns; None when there were too many to list or for numbers.
    """

    model_config = _STRICT
    name: str = Field(min_length=1)
    dtype: str
    nullable: bool
    categories: list[str] | None = None

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        name = ALIASES.get(value, value)
        if name not in DTYPES:
            raise ValueError(f"unknown type {value!r}; use one of: {', '.join(sorted(DTYPES))}")
        return name


class InputPolicy(BaseModel):
    """How leniently the model's input is read; the defaults are the strict choices.

    The same policy is applied by HTTP serving, batch scoring and ``Bundle.predict``
    (``shipyard.registry.input_contract``), so one row gets one decision everywhere.

    Attributes:
        unseen_categories: ``error`` refuses a text value outside the feature's training
            categories; ``unknown`` scores it as the encoders' unknown category.
        text_to_number: Whether text spelling a decimal number (``"1.5"``, ``"-2e3"``) is read
            as that number in a numeric feature. Off: text there is refused.
        text_to_bool: Whether the text ``"true"`` / ``"false"`` is read as a boolean in a
            boolean feature. Off: text there is refused. ``"1"``/``"0"`` never are.
        infinity: Always ``error``: no model is trained on infinite values (stated so the
            manifest says it, not only the code).
    """

    model_config = _STRICT
    unseen_categories: Literal["error", "unknown"] = "error"
    text_to_number: bool = False
    text_to_bool: bool = False
    infinity: Literal["error"] = "error"


class Lineage(BaseModel):
    """Where a model came from: the run, the data versions, the code and the recipe."""

    model_config = _STRICT
    run_id: str | None = None
    dataset_ids: dict[str, str] = Field(default_factory=dict)
    code_version: str | None = None
    spec_hash: str | None = None
    seed: int | None = None


class BundleManifest(BaseModel):
    """``manifest.json`` of a bundle; ``files`` and ``requirements`` are filled by the writer.

    Attributes:
        classes: Label of each class code (code ``j`` means ``classes[j]``); None for regression.
        threshold: Cut on ``proba[:, 1]`` for binary models; None means 0.5.
        input_policy: How leniently inputs are read (strict by default; older manifests
            without it read as strict).
        requirements: Package -> version needed to load the model (``python`` included).
        files: Member name -> SHA-256 of every member except ``manifest.json``.
    """

    model_config = _STRICT
    format_version: int = FORMAT_VERSION
    name: str | None = None
    task: Literal["binary", "multiclass", "regression"]
    target: str = Field(min_length=1)
    features: list[FeatureField]
    classes: list[str | int | bool] | None = None
    threshold: float | None = None
    input_policy: InputPolicy = Field(default_factory=InputPolicy)
    primary_metric: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    requirements: dict[str, str] = Field(default_factory=dict)
    created_at: AwareDatetime
    model_format: Literal["skops"] = "skops"
    files: dict[str, str] = Field(default_factory=dict)

    @field_validator("classes", mode="before")
    @classmethod
    def _plain_classes(cls, value: Any) -> Any:
        # numpy scalars (from numpy.unique) become the Python values they stand for
        if hasattr(value, "tolist"):
            return value.tolist()
        if isinstance(value, list | tuple):
            return [v.item() if hasattr(v, "item") else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BundleManifest:
        if self.format_version > FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is newer than this Shipyard reads "
                f"({FORMAT_VERSION}); upgrade Shipyard to load this bundle"
            )
        if self.format_version < 1:
            raise ValueError("format_version must be at least 1")
        if not self.features:
            raise ValueError("features is empty: a bundle must carry its input contract")
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"features lists {', '.join(twice)} more than once")
        if self.target in names:
            raise ValueError(f"target {self.target!r} is also a feature")
        self._check_classes()
        return self

    def _check_classes(self) -> None:
        if self.task == "regression":
            if self.classes is not None:
                raise ValueError("a regression model has no classes")
        elif self.classes is None or len(self.classes) < 2:
            raise ValueError(f"a {self.task} model needs at least two classes")
        elif len(set(map(repr, self.classes))) != len(self.classes):
            raise ValueError("classes lists a label twice")
        elif self.task == "binary" and len(self.classes) != 2:
            raise ValueError(f"a binary model has exactly two classes, got {len(self.classes)}")
        if self.threshold is not None:
            if self.task != "binary":
                raise ValueError("only binary models have a decision threshold")
            if not 0.0 < self.threshold < 1.0:
                raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in the order the model takes them."""
        return [f.name for f in self.features]


def features_from_frame(
    frame: pl.DataFrame, features: Sequence[str], *, max_categories: int = 1000
) -> list[FeatureField]:
    """Derive the input contract from the training rows.

    Args:
        frame: The rows the model was trained on (features at least).
        features: The feature columns, in the model's order.
        max_categories: Most distinct values listed for a text column; with more, the
            column's ``categories`` is None and unseen values are not flagged.

    Raises:
        InvalidData: A feature is missing from the frame or has a type outside the contract
            vocabulary (lists, structs, times).
    """
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise InvalidData(f"feature column(s) {', '.join(missing)} not in the training frame")
    fields = []
    for name in features:
        column = frame.get_column(name)
        dtype = _contract_type(name, column.dtype)
        categories = None
        if isinstance(column.dtype, _CATEGORY_DTYPES):
            values = column.drop_nulls().cast(pl.String).unique()
            if values.len() <= max_categories:
                categories = sorted(values.to_list())
        fields.append(
            FeatureField(
                name=name, dtype=dtype, nullable=column.null_count() > 0, categories=categories
            )
        )
    return fields


def _contract_type(name: str, dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Enum):
        return "category"
    mapped = type_name(dtype)
    if mapped in DTYPES:
        return mapped
    if dtype.is_numeric():  # Decimal, Int128: the pipeline reads them as float64
        return "float64"
    raise InvalidData(
        f"feature {name!r} has type {dtype}, which no model contract can describe; cast it in "
        "a features step or exclude it"
    )
