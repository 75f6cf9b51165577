"""The ``train:`` section of ``shipyard.yaml``: what to learn, from what, and how to judge it.

The same models are the Python API (``TrainSpec(target="churned", estimators=[...])``), so a
spec written in code and one read from YAML train identically. Defaults are the choices a
careful practitioner would make without thinking: LightGBM with its library defaults and native
categorical handling, fitted once when there is nothing to search (issue 16: twenty identical
trials of a fixed model cost CPU and bought nothing), stratified splits for classification, and
the chosen configuration refitted on train + validation before the one test score.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from shipyard.train.cleaning_spec import ModelCleaningSpec

Task = Literal["binary", "multiclass", "regression"]
_STRICT = ConfigDict(extra="forbid", frozen=True)

DEFAULT_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "f1", "regression": "rmse"}


class SplitSpec(BaseModel):
    """How rows are held out: a validation set (thresholds) and a test set (touched once)."""

    model_config = _STRICT
    strategy: Literal["auto", "random", "stratified", "group", "time"] = "auto"
    test_size: float = Field(0.2, gt=0.0, lt=0.5)
    validation_size: float = Field(0.2, gt=0.0, lt=0.5)
    group_column: str | None = None
    time_column: str | None = None

    @model_validator(mode="after")
    def _columns_for_strategy(self) -> SplitSpec:
        if self.strategy == "group" and not self.group_column:
            raise ValueError("split strategy 'group' needs group_column")
        if self.strategy == "time" and not self.time_column:
            raise ValueError("split strategy 'time' needs time_column")
        if self.test_size + self.validation_size >= 0.8:
            raise ValueError("test_size + validation_size must leave at least 20% for training")
        return self


class CVSpec(BaseModel):
    """Cross-validation on the training rows, used to score every tuning trial."""

    model_config = _STRICT
    strategy: Literal["auto", "kfold", "stratified", "group", "time_series"] = "auto"
    folds: int = Field(5, ge=2, le=20)
    nested: bool = False
    outer_folds: int = Field(3, ge=2, le=10)


class TuningSpec(BaseModel):
    """The Optuna search: sampler, budgets, pruning, parallelism, extra objectives."""

    model_config = _STRICT
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    trials: int = Field(20, ge=1, le=100_000)
    timeout_s: float | None = Field(None, gt=0)
    n_jobs: int = Field(1, ge=1, le=64)
    pruning: bool = True
    objectives: list[Literal["latency", "size"]] = Field(default_factory=list)
    child_runs: bool = True


class ThresholdSpec(BaseModel):
    """What the binary decision threshold is tuned for, on validation rows only."""

    model_config = _STRICT
    goal: Literal["f1", "recall_at_precision", "cost", "none"] = "f1"
    min_precision: float | None = Field(None, gt=0.0, le=1.0)
    cost_false_positive: float = Field(1.0, ge=0.0)
    cost_false_negative: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _precision_for_goal(self) -> ThresholdSpec:
        if self.goal == "recall_at_precision" and self.min_precision is None:
            raise ValueError("goal 'recall_at_precision' needs min_precision, e.g. 0.5")
        return self


class ImbalanceSpec(BaseModel):
    """Class weights and in-fold resampling for rare classes."""

    model_config = _STRICT
    class_weight: Literal["balanced"] | None = None
    resample: Literal["none", "under", "over", "smote"] = "none"
    sampling_ratio: float | None = Field(None, gt=0.0, le=1.0)
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)

    @model_validator(mode="after")
    def _one_correction(self) -> ImbalanceSpec:
        if self.class_weight is not None and self.resample != "none":
            raise ValueError(
                "class_weight and resample both correct for imbalance; choose one of them"
            )
        return self


class PreprocessSpec(BaseModel):
    """Feature preprocessing, fitted inside the model pipeline (training folds only)."""

    model_config = _STRICT
    # auto: standard scaling for linear models, none for trees (they split on order, and
    # unscaled inputs keep float32 ONNX exports exact).
    scale: Literal["auto", "standard", "none"] = "auto"
    categorical: Literal["onehot", "ordinal", "target"] = "onehot"
    impute_numeric: Literal["median", "mean"] = "median"
    max_categories: int | None = Field(50, ge=2)
    # ``clean`` rules fitted on training rows (``train.cleaning``); the pipeline fills it in.
    clean: ModelCleaningSpec | None = None

    @model_serializer(mode="wrap")
    def _without_empty_clean(self, handler: SerializerFunctionWrapHandler) -> Any:
        """Leave ``clean`` out when unset, so specs without it keep their fingerprint."""
        data = handler(self)
        if isinstance(data, dict) and data.get("clean") is None:
            data.pop("clean", None)
        return data


class EstimatorSpec(BaseModel):
    """One candidate estimator: fixed ``params`` plus a search ``space``.

    A space entry is a list of choices (``[0.1, 1, 10]``), or a range
    (``{low: 0.001, high: 10, log: true}``; integers when both bounds are integers).
    """

    model_config = _STRICT
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _space_params_not_fixed(self) -> EstimatorSpec:
        both = sorted(set(self.params) & set(self.space))
        if both:
            raise ValueError(f"{', '.join(both)} given both as fixed params and in space")
        return self


class RegisterSpec(BaseModel):
    """Register the trained bundle, and optionally ask the gate to promote it."""

    model_config = _STRICT
    model: str = Field(min_length=1, max_length=100)
    promote_to: str | None = None
    margin: float = 0.0


class TrainSpec(BaseModel):
    """Everything needed to train, tune, evaluate and bundle one model."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    target: str = Field(min_length=1)
    task: Task | None = None
    data: str | None = None
    features: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] | None = None
    estimators: list[EstimatorSpec] = Field(
        default_factory=lambda: [EstimatorSpec(name="lightgbm")], min_length=1
    )
    metric: str | None = None
    # ``auto``: search LightGBM, XGBoost and a linear model (``shipyard.train.search``).
    search: Literal["auto"] | None = None
    budget_cpu_s: float | None = Field(None, gt=0, description="CPU-seconds tuning may spend")
    split: SplitSpec = Field(default_factory=SplitSpec)
    cv: CVSpec = Field(default_factory=CVSpec)
    tuning: TuningSpec = Field(default_factory=TuningSpec)
    imbalance: ImbalanceSpec = Field(default_factory=ImbalanceSpec)
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    # Off by default: a 10% early-stopping slice costs rows and its noisy stop point made
    # small-data fits worse than the library's defaults (issue 16).
    early_stopping_rounds: int | None = Field(None, ge=1)
    drop_suspects: bool = Field(
        False, description="drop identifier-like and likely-leak columns instead of warning"
    )
    slices: list[str] = Field(default_factory=list)
    bootstrap_resamples: int = Field(1000, ge=0, le=100_000)
    # Off unless asked: permutation importance predicts the validation rows once per feature
    # and repeat, several times the CPU of the default fit itself (issue 16).
    explain: bool = Field(False, description="permutation importances of the raw features")
    plots: bool = Field(False, description="evaluation plots (imports matplotlib: ~1 CPU-s)")
    seed: int = 0
    # YAML says ``register:``; ``BaseModel`` already has an attribute of that name.
    registration: RegisterSpec | None = Field(None, alias="register")

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> TrainSpec:
        if self.features is not None and self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed in features")
        if self.features is not None and len(set(self.features)) != len(self.features):
            raise ValueError("features lists a column twice")
        names = [e.name for e in self.estimators]
        if len(set(names)) != len(names):
            raise ValueError("estimators lists a name twice; merge their spaces")
        return self

    @property
    def searches(self) -> bool:
        """Whether there is anything to choose between: several estimators or a non-empty space.

        Without a choice, tuning would score one fixed configuration over and over; the trainer
        fits it once instead.
        """
        return (
            self.search == "auto"
            or len(self.estimators) > 1
            or any(e.space for e in self.estimators)
        )

    def fingerprint(self) -> str:
        """Return a hash of the spec, recorded in bundles so a model's recipe is traceable."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
