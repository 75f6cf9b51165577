"""Turn a training result into a bundle: the model plus everything needed to trust it later.

The manifest carries the input contract (from the training rows), the test metrics with their
intervals, the threshold, the generalization verdict and the lineage; the reference profile and
sample travel as members for drift monitoring; the evaluation plots for the model card.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.registry.bundle import write_bundle
from shipyard.registry.manifest import BundleManifest, Lineage, features_from_frame

if TYPE_CHECKING:
    from shipyard.train.trainer import TrainResult


def manifest_for(
    result: TrainResult,
    *,
    name: str | None,
    created_at: dt.datetime,
    run_id: str | None,
    dataset_ids: dict[str, str],
    code_version: str | None,
) -> BundleManifest:
    """Describe ``result`` as a bundle manifest (requirements and file hashes come at write)."""
    features = features_from_frame(result.train_features, result.columns.features)
    return BundleManifest(
        name=name,
        task=result.task,
        target=result.spec.target,
        features=features,
        classes=result.classes,
        threshold=None if result.threshold is None else result.threshold.threshold,
        primary_metric=result.metric,
        metrics=_metrics(result),
        lineage=Lineage(
            run_id=run_id,
            dataset_ids=dataset_ids,
            code_version=code_version,
            spec_hash=result.spec.fingerprint(),
            seed=result.spec.seed,
        ),
        requirements={},
        created_at=created_at,
    )


def _metrics(result: TrainResult) -> dict[str, Any]:
    evaluation = result.evaluation.to_dict()
    out: dict[str, Any] = {
        "test": evaluation["metrics"],
        "scores": result.scores,
        "generalization": _plain(result.generalization),
        "estimator": result.tuning.best.estimator,
        "params": result.tuning.best.params,
        "split_sizes": result.split_sizes,
        "importance": result.importance,
        "warnings": result.warnings,
        "refit": "train+validation",
    }
    for key in ("slices", "per_class_recall", "confusion"):
        if evaluation.get(key):
            out[key] = evaluation[key]
    if result.threshold is not None:
        out["threshold"] = result.threshold.to_dict()
    if result.nested is not None:
        out["nested_cv"] = result.nested
    # Round-trip through JSON so the manifest holds plain values only (NaN becomes null).
    return dict(json.loads(json.dumps(out, default=_default).replace("NaN", "null")))


def _plain(value: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def write_training_bundle(
    result: TrainResult,
    path: str | Path,
    *,
    name: str | None = None,
    created_at: dt.datetime | None = None,
    run_id: str | None = None,
    dataset_ids: dict[str, str] | None = None,
    code_version: str | None = None,
) -> str:
    """Write ``result`` as a bundle at ``path`` and return the bundle's sha256.

    The pipeline's train stage fills in every lineage field; from Python, ``result`` and
    ``path`` are enough: ``write_training_bundle(shipyard.train_model(spec, frame), path)``.

    Args:
        result: What ``train`` returned.
        path: Where the bundle file goes (written atomically).
        name: The model's name in the manifest.
        created_at: When the bundle was made (default: now, UTC).
        run_id: The tracked run that trained it.
        dataset_ids: Datasets by role (``{"test": ...}`` lets the promotion gate re-score it).
        code_version: The git commit of the training code.
    """
    manifest = manifest_for(
        result,
        name=name,
        created_at=created_at or dt.datetime.now(dt.UTC),
        run_id=run_id,
        dataset_ids=dataset_ids or {},
        code_version=code_version,
    )
    return write_bundle(
        Path(path),
        result.model,
        manifest,
        reference=result.reference.to_dict(),
        reference_sample=result.reference.sample,
        extra_files={f"plots/{k}": v for k, v in result.plots.items()},
    )
