"""Rare classes: in-fold resampling and a decision threshold chosen for a stated goal.

Resamplers sit inside an imbalanced-learn pipeline, whose samplers act in ``fit`` only: synthetic
or duplicated rows exist while a fold trains and never reach validation, test or serving rows.
The threshold is chosen on validation predictions, never on the test set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import InvalidData

if TYPE_CHECKING:
    from shipyard.train.spec import ImbalanceSpec, ThresholdSpec


def make_sampler(spec: ImbalanceSpec, *, seed: int, minority_rows: int) -> Any | None:
    """Return the imbalanced-learn sampler the spec asks for, or None.

    Raises:
        InvalidData: SMOTE with fewer than two minority rows per fold (nothing to interpolate).
    """
    if spec.resample == "none":
        return None
    strategy: Any = spec.sampling_ratio if spec.sampling_ratio is not None else "auto"
    if spec.resample == "under":
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=strategy, random_state=seed)
    if spec.resample == "over":
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=strategy, random_state=seed)
    from imblearn.over_sampling import SMOTE

    if minority_rows < 2:
        raise InvalidData(
            f"SMOTE needs at least 2 minority rows per training fold, found {minority_rows}; "
            "use resample: over, fewer folds, or more data"
        )
    return SMOTE(
        sampling_strategy=strategy, random_state=seed, k_neighbors=min(5, minority_rows - 1)
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold and what it achieves on the validation rows."""

    threshold: float
    goal: str
    precision: float
    recall: float
    f1: float
    expected_cost: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the bundle manifest and the run."""
        return asdict(self)


def tune_threshold(
    spec: ThresholdSpec, y_true: np.ndarray[Any, Any], positive_proba: np.ndarray[Any, Any]
) -> ThresholdChoice:
    """Pick the decision threshold on ``positive_proba`` that best meets the spec's goal.

    Candidates are the distinct predicted probabilities (scikit-learn's precision-recall curve);
    ``recall_at_precision`` falls back to the most precise threshold, and says so in ``goal``,
    when no threshold reaches the minimum precision.
    """
    from sklearn.metrics import precision_recall_curve

    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(positive_proba, dtype=np.float64)
    if spec.goal == "none" or y.min() == y.max():
        return _at(0.5, "none" if spec.goal == "none" else "default: one class only", y, p, spec)
    precision, recall, thresholds = precision_recall_curve(y, p)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if spec.goal == "f1":
        f1 = _f1(precision, recall)
        best = int(np.argmax(f1))
        return _at(float(thresholds[best]), "f1", y, p, spec)
    if spec.goal == "recall_at_precision":
        assert spec.min_precision is not None
        ok = precision >= spec.min_precision
        if ok.any():
            best = int(np.flatnonzero(ok)[np.argmax(recall[ok])])
            return _at(float(thresholds[best]), "recall_at_precision", y, p, spec)
        best = int(np.argmax(precision))
        goal = f"recall_at_precision (unreachable: best precision {precision[best]:.3f})"
        return _at(float(thresholds[best]), goal, y, p, spec)
    costs = [_cost(y, p >= t, spec) for t in thresholds]
    best = int(np.argmin(costs))
    return _at(float(thresholds[best]), "cost", y, p, spec)


def _f1(precision: np.ndarray[Any, Any], recall: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    total = precision + recall
    f1: np.ndarray[Any, Any] = np.divide(
        2 * precision * recall, total, out=np.zeros_like(total), where=total > 0
    )
    return f1


def _cost(y: np.ndarray[Any, Any], decided: np.ndarray[Any, Any], spec: ThresholdSpec) -> float:
    fp = int(np.sum(decided & (y == 0)))
    fn = int(np.sum(~decided & (y == 1)))
    return fp * spec.cost_false_positive + fn * spec.cost_false_negative


def _at(
    threshold: float,
    goal: str,
    y: np.ndarray[Any, Any],
    p: np.ndarray[Any, Any],
    spec: ThresholdSpec,
) -> ThresholdChoice:
    threshold = min(max(threshold, 1e-6), 1 - 1e-6)  # a valid cut on (0, 1)
    decided = p >= threshold
    tp = int(np.sum(decided & (y == 1)))
    precision = tp / max(int(decided.sum()), 1)
    recall = tp / max(int((y == 1).sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cost = _cost(y, decided, spec) / len(y) if spec.goal == "cost" else None
    return ThresholdChoice(threshold, goal, precision, recall, f1, cost)


def balanced_sample_weight(y: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per-row weights equivalent to ``class_weight='balanced'`` (for XGBoost, which lacks it)."""
    from sklearn.utils.class_weight import compute_sample_weight

    weights: np.ndarray[Any, Any] = np.asarray(compute_sample_weight("balanced", y), np.float64)
    return weights
