"""Evaluation plots saved as run artifacts: ROC, PR, confusion, calibration, residuals, importance.

Figures are built as ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, never
through ``pyplot``: pyplot keeps a global registry of open figures and a current backend, which
leaks memory in long-lived processes and is not safe when trials run in threads. The numbers
behind each curve come from scikit-learn (``roc_curve``, ``precision_recall_curve``,
``calibration_curve``), so the pictures agree with the reported metrics.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from shipyard.core.errors import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from matplotlib.axes import Axes
    from numpy.typing import ArrayLike, NDArray

    from shipyard.train.spec import Task

# Curves drawn per figure at most; beyond this a legend is unreadable anyway.
_MAX_CURVES = 10
# Points drawn in a residual scatter at most (a seeded subsample keeps the file small).
_MAX_POINTS = 5000
_MAX_ANNOTATED_CLASSES = 20


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" metadata: equal inputs give byte-equal files whatever the version.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)


def _short(label: Any, width: int = 18) -> str:
    text = str(label)
    return text if len(text) <= width else text[: width - 1] + "…"


def _curve_classes(task: Task, k: int) -> list[int]:
    return [1] if task == "binary" else list(range(min(k, _MAX_CURVES)))


def _suffix(task: Task, k: int) -> str:
    return f" (first {_MAX_CURVES} of {k} classes)" if task != "binary" and k > _MAX_CURVES else ""


def _roc(task: Task, y: NDArray[np.int64], proba: NDArray[np.float64], names: list[str]) -> bytes:
    figure = Figure(figsize=(6, 5))
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    drawn = 0
    for c in _curve_classes(task, len(names)):
        positive = y == c
        if positive.all() or not positive.any():
            continue  # a ROC curve needs positives and negatives
        fpr, tpr, _ = roc_curve(positive, proba[:, c])
        ax.plot(fpr, tpr, label=f"{names[c]} (AUC {auc(fpr, tpr):.3f})")
        drawn += 1
    if not drawn:
        _note(ax, "ROC undefined: the evaluated rows hold a single class")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1))
    ax.set_title("ROC curve" + _suffix(task, len(names)))
    ax.legend(loc="lower right", fontsize="small")
    return _png(figure)


def _pr(task: Task, y: NDArray[np.int64], proba: NDArray[np.float64], names: list[str]) -> bytes:
    figure = Figure(figsize=(6, 5))
    ax = figure.add_subplot()
    drawn = 0
    for c in _curve_classes(task, len(names)):
        positive = y == c
        if not positive.any():
            continue  # recall is undefined without positives
        precision, recall, _ = precision_recall_curve(positive, proba[:, c])
        ap = average_precision_score(positive, proba[:, c])
        line = ax.step(recall, precision, where="post", label=f"{names[c]} (AP {ap:.3f})")
        ax.axhline(positive.mean(), color=line[0].get_color(), linestyle=":", linewidth=1)
        drawn += 1
    if drawn:
        ax.legend(loc="lower left", fontsize="small")
    else:
        _note(ax, "PR curve undefined: no positive rows among those evaluated")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title("Precision-recall (dotted: prevalence)" + _suffix(task, len(names)))
    return _png(figure)


def _confusion(y: NDArray[np.int64], pred: NDArray[np.int64], names: list[str]) -> bytes:
    k = len(names)
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (y, pred), 1)
    size = min(4 + 0.4 * k, 16)
    figure = Figure(figsize=(size + 1, size))
    ax = figure.add_subplot()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ax.set_xticks(range(k), [_short(n) for n in names], rotation=45, ha="right")
    ax.set_yticks(range(k), [_short(n) for n in names])
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    if k <= _MAX_ANNOTATED_CLASSES:
        threshold = counts.max() / 2 if counts.size else 0
        for (i, j), count in np.ndenumerate(counts):
            color = "white" if count > threshold else "black"
            ax.text(j, i, str(count), ha="center", va="center", color=color, fontsize="small")
    figure.tight_layout()
    return _png(figure)


def _calibration(
    task: Task, y: NDArray[np.int64], proba: NDArray[np.float64], names: list[str]
) -> bytes:
    figure = Figure(figsize=(6, 7))
    curve_ax, hist_ax = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    curve_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for c in _curve_classes(task, len(names)):
        observed, predicted = calibration_curve(y == c, proba[:, c], n_bins=10)
        curve_ax.plot(predicted, observed, marker="o", label=names[c])
        hist_ax.hist(proba[:, c], bins=20, range=(0, 1), histtype="step")
    curve_ax.set(ylabel="observed frequency", ylim=(0, 1))
    curve_ax.set_title("Calibration" + _suffix(task, len(names)))
    curve_ax.legend(loc="upper left", fontsize="small")
    hist_ax.set(xlabel="predicted probability", ylabel="rows", xlim=(0, 1))
    figure.tight_layout()
    return _png(figure)


def _residuals(y: NDArray[np.float64], pred: NDArray[np.float64]) -> bytes:
    residual = y - pred
    shown = np.arange(y.shape[0])
    if shown.size > _MAX_POINTS:
        shown = np.sort(np.random.default_rng(0).choice(shown, _MAX_POINTS, replace=False))
    figure = Figure(figsize=(10, 4))
    scatter_ax, hist_ax = figure.subplots(1, 2)
    scatter_ax.scatter(pred[shown], residual[shown], s=6, alpha=0.5)
    scatter_ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    scatter_ax.set(xlabel="predicted", ylabel="residual (true - predicted)")
    scatter_ax.set_title("Residuals vs predicted")
    hist_ax.hist(residual, bins=40)
    hist_ax.set(xlabel="residual", ylabel="rows", title="Residual distribution")
    figure.tight_layout()
    return _png(figure)


def _importance(importance: Mapping[str, float], top: int) -> bytes:
    ranked = sorted(importance.items(), key=lambda item: (-abs(item[1]), item[0]))[:top]
    ranked.reverse()  # barh draws bottom-up; the most important ends on top
    figure = Figure(figsize=(7, max(2.5, 0.3 * len(ranked) + 1)))
    ax = figure.add_subplot()
    ax.barh([_short(name, 30) for name, _ in ranked], [value for _, value in ranked])
    ax.set(xlabel="importance", title=f"Feature importance (top {len(ranked)})")
    figure.tight_layout()
    return _png(figure)


def evaluation_plots(
    task: Task,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    proba: ArrayLike | None,
    classes: Sequence[Any] | None,
    *,
    feature_importance: Mapping[str, float] | None = None,
    top_features: int = 20,
) -> dict[str, bytes]:
    """Draw the evaluation plots of a task as PNG files.

    Classification gives ``confusion.png`` and, with probabilities, ``roc.png``, ``pr.png``
    and ``calibration.png`` (binary: the positive class; multiclass: one-vs-rest curves for
    up to ten classes). Regression gives ``residuals.png``. ``feature_importance.png`` comes
    with ``feature_importance`` (the ``top_features`` largest by magnitude).

    Args:
        task: The task.
        y_true: True class codes (classification) or values (regression).
        y_pred: Predicted codes or values.
        proba: Class probabilities ``(n, k)``, or ``None``.
        classes: Class labels in code order (ignored for regression).
        feature_importance: Feature name to importance.
        top_features: How many features the importance plot shows.

    Returns:
        File name to PNG bytes.

    Raises:
        InvalidArgument: Inputs of mismatched lengths or shapes.
    """
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.ndim != 1 or pred.shape != true.shape:
        raise InvalidArgument("y_true and y_pred must be 1-D arrays of equal length")
    if true.size == 0:
        raise InvalidArgument("no rows to plot; evaluate on a non-empty held-out set")
    plots: dict[str, bytes] = {}
    if task == "regression":
        plots["residuals.png"] = _residuals(true.astype(np.float64), pred.astype(np.float64))
    else:
        names = [str(c) for c in classes or []]
        codes, decided = true.astype(np.int64), pred.astype(np.int64)
        if len(names) < 2 or min(codes.min(initial=0), decided.min(initial=0)) < 0:
            raise InvalidArgument("classification plots need 2+ classes and codes 0..k-1")
        if max(codes.max(initial=0), decided.max(initial=0)) >= len(names):
            raise InvalidArgument(f"class codes must be below {len(names)}, one per class")
        plots["confusion.png"] = _confusion(codes, decided, names)
        if proba is not None:
            probabilities = np.asarray(proba, dtype=np.float64)
            if probabilities.shape != (true.shape[0], len(names)):
                raise InvalidArgument("proba must have one row per row and one column per class")
            plots["roc.png"] = _roc(task, codes, probabilities, names)
            plots["pr.png"] = _pr(task, codes, probabilities, names)
            plots["calibration.png"] = _calibration(task, codes, probabilities, names)
    if feature_importance:
        plots["feature_importance.png"] = _importance(feature_importance, top_features)
    return plots
