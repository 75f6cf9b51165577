"""Real bundles of small scikit-learn pipelines on sklearn's own datasets, fast to build.

Fitted the way the trainer fits (a ColumnTransformer on a pandas frame, then the estimator), so
the bundle reader, the gate and the card see what they see in production. ``weak`` models use
one uninformative feature, so the gate has a worse candidate to refuse.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from shipyard.registry.bundle import write_bundle
from shipyard.registry.manifest import BundleManifest, Lineage, features_from_frame

CREATED = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TRAIN_ROWS = {"binary": 380, "regression": 300}
TARGET = {"binary": "malignant", "regression": "progression"}
WEAK = {"binary": ["texture_error"], "regression": ["sex"]}


@cache
def data(task: str) -> pl.DataFrame:
    """breast_cancer (binary) or diabetes (regression) as one shuffled Polars frame."""
    loaded = load_breast_cancer() if task == "binary" else load_diabetes()
    names = [str(n).replace(" ", "_") for n in loaded.feature_names]
    frame = pl.DataFrame(np.asarray(loaded.data), schema=names, orient="row")
    target = loaded.target if task == "regression" else 1 - loaded.target  # 1 = malignant
    frame = frame.with_columns(pl.Series(TARGET[task], target))
    order = np.random.default_rng(0).permutation(frame.height)
    return frame[order.tolist()]


def train_frame(task: str) -> pl.DataFrame:
    """The rows the models were fitted on."""
    return data(task).head(TRAIN_ROWS[task])


def held_out(task: str) -> pl.DataFrame:
    """The held-out rows the gate scores on."""
    return data(task).slice(TRAIN_ROWS[task])


@dataclass(frozen=True)
class Built:
    """A fitted pipeline and its manifest."""

    model: Any
    manifest: BundleManifest


@cache
def _built(task: str, features: tuple[str, ...] | None, constant: bool) -> Built:
    frame = train_frame(task)
    target = TARGET[task]
    names = list(features) if features else [c for c in frame.columns if c != target]
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    estimator = LogisticRegression(max_iter=1000) if task == "binary" else Ridge(alpha=1.0)
    model = Pipeline([("prep", ColumnTransformer([("num", numeric, names)])), ("est", estimator)])
    model.fit(frame.select(names).to_pandas(), frame[target].to_numpy())
    if constant:  # a model that ignores its input: the same answer for every row
        model.named_steps["est"].coef_[:] = 0.0
    classes = None if task == "regression" else [0, 1]
    metric = "roc_auc" if task == "binary" else "rmse"
    manifest = BundleManifest(
        name=f"{task}-{len(names)}",
        task=task,  # type: ignore[arg-type]
        target=target,
        features=features_from_frame(frame, names),
        classes=classes,
        primary_metric=metric,
        metrics={
            "test": {metric: {"value": 0.9, "low": 0.85, "high": 0.95}},
            "estimator": "logistic" if task == "binary" else "ridge",
        },
        lineage=Lineage(run_id="r" * 32, dataset_ids={}, code_version="abc123", seed=0),
        created_at=CREATED,
    )
    return Built(model, manifest)


def bundle_bytes(
    directory: Path,
    task: str = "binary",
    *,
    features: list[str] | None = None,
    constant: bool = False,
    test_dataset: str | None = None,
    metrics: dict[str, Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    name: str = "bundle",
) -> bytes:
    """Write a bundle of ``task`` under ``directory`` and return its bytes."""
    built = _built(task, None if features is None else tuple(features), constant)
    manifest = built.manifest
    update: dict[str, Any] = {}
    if test_dataset is not None:
        update["lineage"] = manifest.lineage.model_copy(
            update={"dataset_ids": {"test": test_dataset}}
        )
    if metrics is not None:
        update["metrics"] = metrics
    path = directory / f"{name}.shipyard"
    write_bundle(path, built.model, manifest.model_copy(update=update), extra_files=extra_files)
    return path.read_bytes()


def sklearn_model(task: str, features: list[str] | None = None) -> Any:
    """The fitted pipeline behind ``bundle_bytes`` (for scoring it independently)."""
    return _built(task, None if features is None else tuple(features), False).model
