"""Real bundles trained on a small churn-like frame, with their test split stored as a dataset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from shipyard.data.datasets import read_dataset, write_dataset
from shipyard.registry.bundle import read_bundle
from shipyard.registry.packaging import write_training_bundle
from shipyard.store.stores import Stores
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train


def churn(n: int = 600, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.integers(1, 60, n).astype(float)
    charges = rng.normal(50, 15, n)
    logit = -0.08 * tenure + 0.01 * (charges - 50) + np.where(plan == "basic", 1.5, -1.0) + 1.5
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


def bundle_file(
    workspace: Stores,
    directory: Path,
    *,
    features: list[str] | None = None,
    name: str = "m",
    extra_column: str | None = None,
) -> Path:
    """Train, store the test split in ``workspace``, write the bundle; return its path.

    ``extra_column`` adds a categorical column (so the model needs an input others lack).
    """
    spec = TrainSpec(
        target="churned",
        features=features,
        estimators=[EstimatorSpec(name="logistic")],
        tuning={"trials": 1},
        cv={"folds": 2},
        bootstrap_resamples=20,
        explain=False,
    )
    frame = churn()
    if extra_column is not None:
        regions = ["north", "south"] * (frame.height // 2)
        frame = frame.with_columns(pl.Series(extra_column, regions))
    result = train(spec, frame)
    test = write_dataset(workspace, result.test_frame, name="churn.test")
    path = directory / f"{name}.shipyard"
    write_training_bundle(
        result,
        path,
        name=name,
        created_at=dt.datetime.now(dt.UTC),
        run_id=None,
        dataset_ids={"test": test.dataset_id},
        code_version=None,
    )
    return path


_TRAINED: dict[tuple[str, tuple[str, ...] | None], tuple[bytes, pl.DataFrame, str]] = {}


def cached_bundle_file(
    workspace: Stores, directory: Path, *, features: list[str] | None = None, name: str = "m"
) -> Path:
    """``bundle_file``, trained once per process: later workspaces get the same bundle bytes.

    The test split is written into each workspace again; its dataset id is a content hash, so
    it equals the one the bundle names (checked, so a change there fails loudly).
    """
    key = (name, None if features is None else tuple(features))
    if key not in _TRAINED:
        path = bundle_file(workspace, directory, features=features, name=name)
        test_id = read_bundle(path).manifest.lineage.dataset_ids["test"]
        _TRAINED[key] = (path.read_bytes(), read_dataset(workspace, test_id).collect(), test_id)
        return path
    data, test_frame, test_id = _TRAINED[key]
    written = write_dataset(workspace, test_frame, name="churn.test")
    assert written.dataset_id == test_id, "dataset ids are no longer content hashes"
    path = directory / f"{name}.shipyard"
    path.write_bytes(data)
    return path
