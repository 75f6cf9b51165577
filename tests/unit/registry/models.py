"""Small fitted pipelines, built the way the trainer builds them, and bundle-crafting helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import polars as pl

from shipyard.registry.manifest import BundleManifest, Lineage, features_from_frame
from shipyard.train.fitting import Candidate, build_pipeline, fit_pipeline
from shipyard.train.preprocess import Columns, model_input, resolve_columns
from shipyard.train.spec import EstimatorSpec, TrainSpec

N = 120
CREATED = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
SMALL = {"random_forest": {"n_estimators": 5}, "lightgbm": {"n_estimators": 10}}
SMALL |= {"xgboost": {"n_estimators": 10}, "hist_gradient_boosting": {"max_iter": 10}}


def frame() -> pl.DataFrame:
    """Numeric (with nulls), integer, boolean and text (with nulls) features plus targets."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=N)
    return pl.DataFrame(
        {
            "a": [None if i % 13 == 0 else float(v) for i, v in enumerate(a)],
            "b": rng.integers(0, 6, N),
            "flag": rng.random(N) > 0.5,
            "color": [None if i % 17 == 0 else ["red", "green", "blue"][i % 3] for i in range(N)],
            "binary": np.where(a + rng.normal(scale=0.7, size=N) > 0, "yes", "no"),
            "multi": rng.integers(0, 3, N),
            "value": a * 2 + rng.normal(size=N),
        }
    )


@dataclass(frozen=True)
class Fitted:
    """A fitted pipeline with everything a bundle needs."""

    model: Any
    columns: Columns
    manifest: BundleManifest
    frame: pl.DataFrame

    def x(self, rows: pl.DataFrame | None = None) -> Any:
        """The pandas frame the model takes (training's own conversion)."""
        return model_input(self.frame if rows is None else rows, self.columns)


@cache
def fitted(
    estimator: str,
    task: str,
    *,
    resample: str = "none",
    encoding: str = "onehot",
    scale: str = "standard",
    threshold: float | None = None,
) -> Fitted:
    """Fit ``estimator`` for ``task`` on ``frame()`` with the trainer's own pipeline builder."""
    data = frame()
    target = {"binary": "binary", "multiclass": "multi", "regression": "value"}[task]
    others = {"binary", "multi", "value"} - {target}
    spec = TrainSpec(
        target=target,
        exclude=sorted(others),
        estimators=[EstimatorSpec(name=estimator, params=SMALL.get(estimator, {}))],
        imbalance={"resample": resample},
        preprocess={"categorical": encoding, "scale": scale},
    )
    columns = resolve_columns(spec, data.schema)
    candidate = Candidate(estimator, SMALL.get(estimator, {}))
    raw = data.get_column(target).to_numpy()
    classes = None
    if task == "regression":
        y = raw.astype(np.float64)
    else:
        uniques, y = np.unique(raw, return_inverse=True)
        classes = uniques.tolist()
    pipeline = build_pipeline(spec, task, columns, candidate, minority_rows=10)
    fit_pipeline(pipeline, model_input(data, columns), y, spec=spec, task=task, candidate=candidate)
    manifest = BundleManifest(
        name=f"{estimator}-{task}",
        task=task,
        target=target,
        features=features_from_frame(data, columns.features),
        classes=classes,
        threshold=threshold,
        primary_metric="rmse" if task == "regression" else "roc_auc",
        metrics={"test": {"roc_auc": 0.9}},
        lineage=Lineage(run_id="r1", dataset_ids={"source": "d1"}, code_version="abc", seed=0),
        created_at=CREATED,
    )
    return Fitted(pipeline, columns, manifest, data)


def members(bundle: bytes) -> dict[str, bytes]:
    """The members of a bundle zip, by name."""
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def rebuild(
    bundle: bytes,
    replace: dict[str, bytes] | None = None,
    *,
    manifest: dict[str, Any] | None = None,
    fix_checksums: bool = True,
) -> bytes:
    """Rebuild a bundle with replaced members, as an attacker with full write access could.

    With ``fix_checksums`` the manifest's ``files`` are recomputed, so only Shipyard's own
    checks (not the checksums) stand between the payload and the loader.
    """
    content = members(bundle)
    document = json.loads(content["manifest.json"])
    document.update(manifest or {})
    content.update(replace or {})
    if fix_checksums:
        document["files"] = {
            name: hashlib.sha256(data).hexdigest()
            for name, data in content.items()
            if name != "manifest.json"
        }
    if "manifest.json" not in (replace or {}):
        content["manifest.json"] = json.dumps(document).encode()
    return zip_of(content)


def zip_of(content: dict[str, bytes]) -> bytes:
    """A zip with these members, in this order (duplicates and odd names allowed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def skops_with_node(base: bytes, node: dict[str, Any], key: str = "evil") -> bytes:
    """Add ``node`` to the top-level object's attributes in a skops file's hand-edited schema."""
    with zipfile.ZipFile(io.BytesIO(base)) as archive:
        content = {info.filename: archive.read(info) for info in archive.infolist()}
    schema = json.loads(content["schema.json"])
    attributes = schema["content"]
    attributes["content"][key] = node
    key_types = attributes["key_types"]["content"]
    key_types.append(key_types[0])  # one key type per key: str
    content["schema.json"] = json.dumps(schema).encode()
    return zip_of(content)


def json_node(value: Any) -> dict[str, Any]:
    """A skops JSON node holding ``value``."""
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def call_node(module: str, name: str, *args: Any) -> dict[str, Any]:
    """A skops node that, if trusted, calls ``module.name(*args)`` while loading."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [json_node(a) for a in args],
        },
    }
