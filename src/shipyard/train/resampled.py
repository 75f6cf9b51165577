"""Metric values of many bootstrap resamples at once, for the confidence intervals in metrics.

Calling scikit-learn once per resample costs about 3 ms a call (input validation dominates), so
1,000 resamples of ten metrics took half a minute. A bootstrap resample only reweights the rows
it was drawn from: each row counts as often as it was drawn. Every metric here is the count-
weighted form of its scikit-learn definition, computed for a whole batch of resamples with array
operations: confusion matrices by ``bincount``, ranking curves by one sort shared by all
resamples (reweighting never changes the order of the scores), means by gathering per-row
losses. ``tests/unit/train/test_metrics.py`` checks each kernel against scikit-learn called
with ``sample_weight`` set to the draw counts, so the two definitions cannot drift apart.

A value is ``nan`` where the metric is undefined on that resample (no positive row for
ROC-AUC, no predicted positive for precision, ...); ``metrics.bootstrap_intervals`` decides
what to do with those.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

    from shipyard.train.spec import Task


def _divide(
    numerator: NDArray[np.float64], denominator: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Divide elementwise; ``nan`` (and no warning) where the denominator is zero."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.asarray(np.divide(numerator, denominator, out=out, where=denominator != 0))


def _nanmean(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean over the last axis ignoring ``nan`` (sklearn's ``zero_division=nan`` averaging)."""
    valid = ~np.isnan(values)
    total = np.where(valid, values, 0.0).sum(axis=-1)
    return _divide(total, valid.sum(axis=-1).astype(np.float64))


class ResampledMetrics:
    """Metric values for a batch of bootstrap resamples given by their row indices.

    Args:
        task: The task; ``y_true``/``y_pred`` are class codes for classification.
        y_true: True values, shape ``(n,)``.
        y_pred: Predicted codes or values, shape ``(n,)``.
        proba: Class probabilities, shape ``(n, k)``, rows summing to one; ``None`` for
            regression.
        n_classes: ``k`` for classification, ignored for regression.
        idx: Row indices of each resample, shape ``(B, n)`` (what ``scipy.stats.bootstrap``
            draws from ``arange(n)``).
    """

    def __init__(
        self,
        task: Task,
        y_true: NDArray[np.generic],
        y_pred: NDArray[np.generic],
        proba: NDArray[np.float64] | None,
        n_classes: int,
        idx: NDArray[np.intp],
    ) -> None:
        self.task = task
        self.y_true = y_true
        self.y_pred = y_pred
        self.proba = proba
        self.k = n_classes
        self.idx = idx
        self.batch, self.n = idx.shape
        self._curve_cache: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}

    def values(self, names: Sequence[str]) -> NDArray[np.float64]:
        """Return the metrics named, shape ``(len(names), B)``; ``nan`` where undefined."""
        return np.stack([getattr(self, f"_{name}")() for name in names])

    # -- shared intermediate results ------------------------------------------------------

    @cached_property
    def counts(self) -> NDArray[np.float64]:
        """How often each row was drawn in each resample, shape ``(B, n)``."""
        flat = (np.arange(self.batch)[:, None] * self.n + self.idx).ravel()
        drawn = np.bincount(flat, minlength=self.batch * self.n)
        return drawn.reshape(self.batch, self.n).astype(np.float64)

    @cached_property
    def confusion(self) -> NDArray[np.float64]:
        """Confusion matrices (true class by row, predicted by column), shape ``(B, k, k)``."""
        k = self.k
        cell = self.y_true.astype(np.intp) * k + self.y_pred.astype(np.intp)
        flat = (np.arange(self.batch)[:, None] * k * k + cell[self.idx]).ravel()
        cells = np.bincount(flat, minlength=self.batch * k * k)
        return cells.reshape(self.batch, k, k).astype(np.float64)

    @cached_property
    def _true_positives(self) -> NDArray[np.float64]:
        return np.diagonal(self.confusion, axis1=1, axis2=2)

    def _per_class(self, denominator: NDArray[np.float64]) -> NDArray[np.float64]:
        """Binary: the positive class's value; multiclass: the macro mean over classes."""
        per_class = _divide(self._true_positives, denominator)
        if self.task == "binary":
            return per_class[:, 1]
        return _nanmean(per_class)

    def _mean_of(self, per_row: NDArray[np.float64]) -> NDArray[np.float64]:
        """Mean of a per-row quantity within each resample."""
        return np.asarray(per_row[self.idx].mean(axis=1), dtype=np.float64)

    # -- classification from confusion matrices -------------------------------------------

    def _accuracy(self) -> NDArray[np.float64]:
        return np.asarray(self._true_positives.sum(axis=1) / self.n, dtype=np.float64)

    def _balanced_accuracy(self) -> NDArray[np.float64]:
        # sklearn: mean recall over the classes present in y_true (of this resample).
        return _nanmean(_divide(self._true_positives, self.confusion.sum(axis=2)))

    def _precision(self) -> NDArray[np.float64]:
        return self._per_class(self.confusion.sum(axis=1))

    def _recall(self) -> NDArray[np.float64]:
        return self._per_class(self.confusion.sum(axis=2))

    def _f1(self) -> NDArray[np.float64]:
        # 2·tp / (2·tp + fp + fn) = 2·tp / (true count + predicted count), as sklearn computes it.
        per_class = _divide(
            2.0 * self._true_positives, self.confusion.sum(axis=2) + self.confusion.sum(axis=1)
        )
        if self.task == "binary":
            return per_class[:, 1]
        return _nanmean(per_class)

    # -- classification from probabilities ------------------------------------------------

    def _curves(self, cls: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Weighted true/false positive counts at each distinct threshold, descending.

        Returns ``(tps, fps)``, each ``(B, g)`` for ``g`` distinct scores of class ``cls``.
        """
        if cls in self._curve_cache:  # ROC-AUC and PR-AUC share the curves
            return self._curve_cache[cls]
        assert self.proba is not None
        score = self.proba[:, cls]
        order = np.argsort(-score, kind="stable")
        positive = (self.y_true[order] == cls).astype(np.float64)
        ends = np.r_[np.flatnonzero(np.diff(score[order])), self.n - 1]
        weights = self.counts[:, order]
        tps = np.cumsum(weights * positive, axis=1)[:, ends]
        fps = np.cumsum(weights, axis=1)[:, ends] - tps
        self._curve_cache[cls] = (tps, fps)
        return tps, fps

    def _roc_auc_of(self, cls: int) -> NDArray[np.float64]:
        tps, fps = self._curves(cls)
        tpr = _divide(tps, tps[:, -1:])
        fpr = _divide(fps, fps[:, -1:])
        zeros = np.zeros((self.batch, 1))
        tpr, fpr = np.hstack([zeros, tpr]), np.hstack([zeros, fpr])
        # Trapezoidal area under the ROC curve (sklearn.metrics.auc).
        area = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
        return np.asarray(area, dtype=np.float64)

    def _average_precision_of(self, cls: int) -> NDArray[np.float64]:
        tps, fps = self._curves(cls)
        # Thresholds no drawn row reaches have no predictions; their recall step is zero.
        # AP = sum over thresholds of (recall step) x precision; recall = tps / positives.
        predicted = tps + fps
        precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted != 0)
        found = np.sum(np.diff(tps, axis=1, prepend=0.0) * precision, axis=1)
        return _divide(found, tps[:, -1])

    def _one_vs_rest(self, per_class: str) -> NDArray[np.float64]:
        kernel = getattr(self, per_class)
        if self.task == "binary":
            return np.asarray(kernel(1), dtype=np.float64)
        # Macro mean; undefined when any class lacks positives or negatives (as in sklearn).
        return np.asarray(np.mean(np.stack([kernel(c) for c in range(self.k)]), axis=0))

    def _roc_auc(self) -> NDArray[np.float64]:
        return self._one_vs_rest("_roc_auc_of")

    def _pr_auc(self) -> NDArray[np.float64]:
        return self._one_vs_rest("_average_precision_of")

    @cached_property
    def _onehot(self) -> NDArray[np.float64]:
        return np.eye(self.k)[self.y_true.astype(np.intp)]

    def _log_loss(self) -> NDArray[np.float64]:
        assert self.proba is not None
        eps = np.finfo(np.float64).eps  # sklearn clips to the dtype's eps
        clipped = np.clip(self.proba, eps, 1.0 - eps)
        return self._mean_of(-np.log(np.sum(self._onehot * clipped, axis=1)))

    def _brier(self) -> NDArray[np.float64]:
        assert self.proba is not None
        if self.task == "binary":
            per_row = (self._onehot[:, 1] - self.proba[:, 1]) ** 2
        else:  # multiclass Brier: squared distance over all classes, range [0, 2]
            per_row = np.sum((self._onehot - self.proba) ** 2, axis=1)
        return self._mean_of(per_row)

    # -- regression -----------------------------------------------------------------------

    @cached_property
    def _errors(self) -> NDArray[np.float64]:
        return np.asarray(self.y_true, dtype=np.float64) - np.asarray(self.y_pred, np.float64)

    def _mae(self) -> NDArray[np.float64]:
        return self._mean_of(np.abs(self._errors))

    def _rmse(self) -> NDArray[np.float64]:
        return np.sqrt(self._mean_of(self._errors**2))

    def _mape(self) -> NDArray[np.float64]:
        y_true = np.abs(np.asarray(self.y_true, dtype=np.float64))
        return self._mean_of(np.abs(self._errors) / np.maximum(y_true, np.finfo(np.float64).eps))

    def _r2(self) -> NDArray[np.float64]:
        centred = np.asarray(self.y_true, dtype=np.float64)
        centred = centred - centred.mean()  # centring first keeps the sums of squares accurate
        drawn = centred[self.idx]
        total = np.sum((drawn - drawn.mean(axis=1, keepdims=True)) ** 2, axis=1)
        residual = np.sum(self._errors[self.idx] ** 2, axis=1)
        return 1.0 - _divide(residual, total)
