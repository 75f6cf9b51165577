"""How sure the gate's comparison is: a paired bootstrap interval of the candidate's lead.

The gate (``registry.gate``) scores both models once on the same rows; a reviewer also needs to
know whether the difference is more than noise. Rows are resampled with replacement, each
resample scoring both models on the *same* rows (paired), and the percentile interval of the
lead (candidate minus holder, in the metric's better direction) is reported, computed with
the vectorized resampled metrics that training's intervals use (``train.resampled``).
Resamples on which the metric is undefined for either model are left out; with fewer than
half left there is no interval.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.registry.gate import _truth
from shipyard.train.metrics import compute_metric, greater_is_better

_CELLS = 2_000_000  # rows x resamples per batch, as training's intervals bound their memory

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.bundle import Bundle


def paired_lead_interval(
    candidate: Bundle,
    holder: Bundle | None,
    frame: pl.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any] | None:
    """The candidate's lead over ``holder`` on ``frame`` and its bootstrap interval.

    Returns:
        ``{"metric", "lead", "low", "high", "confidence", "resamples"}``, or None without a
        holder, rows, predictions from both, or a defined metric.
    """
    if holder is None or frame.height == 0:
        return None
    m = candidate.manifest
    metric, better = m.primary_metric, greater_is_better(m.primary_metric)
    if m.target not in frame.columns:
        return None
    try:
        y, n_classes = _truth(candidate, frame)
        mine = _coded(candidate, frame, n_classes, m.classes)
        theirs = _coded(holder, frame, n_classes, m.classes)
    except Exception:  # the gate has judged these models already; no interval is no verdict
        return None
    rows = np.flatnonzero(y >= 0 if n_classes else np.isfinite(y))
    if rows.size < 2:
        return None
    a = _metric(metric, m.task, y, mine, rows, n_classes)
    b = _metric(metric, m.task, y, theirs, rows, n_classes)
    if a is None or b is None:
        return None
    point = a - b if better else b - a
    rng = np.random.default_rng(seed)
    leads: list[np.ndarray[Any, Any]] = []
    per_batch = max(1, min(n_resamples, _CELLS // rows.size))
    for start in range(0, n_resamples, per_batch):
        draws = rows[
            rng.integers(0, rows.size, size=(min(per_batch, n_resamples - start), rows.size))
        ]
        ours = _resampled(metric, m.task, y, mine, draws, n_classes)
        other = _resampled(metric, m.task, y, theirs, draws, n_classes)
        leads.append(ours - other if better else other - ours)
    found = np.concatenate(leads)
    found = found[np.isfinite(found)]
    if found.size < n_resamples / 2:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(found, [tail, 1 - tail])
    return {
        "metric": metric,
        "lead": point,
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "resamples": int(found.size),
        "rows": int(rows.size),
    }


def _resampled(
    metric: str,
    task: Any,
    y: np.ndarray[Any, Any],
    coded: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
    draws: np.ndarray[Any, Any],
    n_classes: int,
) -> np.ndarray[Any, Any]:
    """The metric on each resample (rows of ``draws``), vectorized as training's intervals are."""
    from shipyard.train.resampled import ResampledMetrics

    pred, proba = coded
    values: np.ndarray[Any, Any] = ResampledMetrics(task, y, pred, proba, n_classes, draws).values(
        [metric]
    )[0]
    return values


def _coded(
    bundle: Bundle, frame: pl.DataFrame, n_classes: int, classes: list[Any] | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """Predictions as codes (and probabilities) in ``classes`` order, or values."""
    predictions = bundle.predict(frame, unseen_categories="unknown")
    if n_classes == 0:
        return np.asarray(predictions.labels, dtype=np.float64), None
    order = [str(c) for c in (classes or [])]
    own = [str(c) for c in (bundle.manifest.classes or [])]
    remap = np.array([order.index(c) for c in own], dtype=np.int64)
    pred = remap[np.asarray(predictions.codes, dtype=np.int64)]
    proba = None
    if predictions.proba is not None:
        proba = np.asarray(predictions.proba, dtype=np.float64)[:, [own.index(c) for c in order]]
    return pred, proba


def _metric(
    metric: str,
    task: Any,
    y: np.ndarray[Any, Any],
    coded: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
    index: np.ndarray[Any, Any],
    n_classes: int,
) -> float | None:
    pred, proba = coded
    try:
        score = compute_metric(
            metric, task, y[index], pred[index], None if proba is None else proba[index], n_classes
        )
    except ValueError:  # a resample the metric cannot score (one class drawn, say)
        return None
    return score if score is not None and math.isfinite(score) else None
