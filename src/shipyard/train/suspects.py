"""Columns that should not be features: row identifiers and likely leaks, found before fitting.

Issue 16: a default run kept a row-index column and two post-outcome columns as features and
reported test AUC 0.99 with the verdict "Generalizes". Both faults look like a good model, so
they are looked for explicitly, on the training rows (and, for leaks, scored on validation rows)
so the test rows stay untouched:

* **identifier-like**: a column with a distinct value on (almost) every row, or an integer
  column that rises or falls with the row order. A model can only memorize it; with rows in
  time order it also smuggles in time.
* **likely leak**: one column that alone predicts the target almost perfectly on rows it was
  not fitted on (a binned lookup table: per-bin majority class or mean). Real predictors are
  rarely that good alone; columns written after the outcome often are.

Each finding is a ``Suspect`` with a message that says what to do (``train.exclude`` or
``train.drop_suspects: true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from shipyard.train.metrics import greater_is_better

if TYPE_CHECKING:
    from shipyard.train.preprocess import Columns
    from shipyard.train.spec import Task

_UNIQUE_SHARE = 0.99
_MONOTONIC_SHARE = 0.99
_LEAK_SCORE = 0.98
_BINS = 32
_MIN_ROWS = 30


@dataclass(frozen=True)
class Suspect:
    """One column that looks wrong as a feature, and why."""

    column: str
    kind: Literal["identifier", "leak"]
    detail: str

    @property
    def message(self) -> str:
        """The warning as shown in the run output, the model card and the gate's verdict."""
        what = "identifier-like" if self.kind == "identifier" else "a likely leak"
        return (
            f"column {self.column!r} is {what}: {self.detail}; drop it with train.exclude "
            "or train.drop_suspects: true"
        )


def find_suspects(
    frame: pl.DataFrame,
    columns: Columns,
    y: np.ndarray[Any, Any],
    train_rows: np.ndarray[Any, Any],
    check_rows: np.ndarray[Any, Any],
    *,
    task: Task,
) -> list[Suspect]:
    """Return the identifier-like and likely-leak feature columns.

    Args:
        frame: The labelled rows, in the order they were given.
        columns: The feature columns.
        y: Target codes or values of ``frame``'s rows.
        train_rows: Rows the checks learn from (the training split).
        check_rows: Rows a leak's lookup table is scored on (the validation split).
        task: The task.
    """
    found: list[Suspect] = []
    for name in columns.features:
        values = frame[name]
        ident = _identifier(values, train_rows, name in columns.numeric)
        if ident is not None:
            found.append(Suspect(name, "identifier", ident))
            continue
        if len(train_rows) >= _MIN_ROWS and len(check_rows) >= _MIN_ROWS // 3:
            leak = _leak(values, y, train_rows, check_rows, task, name in columns.numeric)
            if leak is not None:
                found.append(Suspect(name, "leak", leak))
    return found


def _identifier(values: pl.Series, rows: np.ndarray[Any, Any], numeric: bool) -> str | None:
    """Why ``values`` looks like a row identifier on ``rows``, or None."""
    # Sorted: split indices come shuffled, and the monotonic check needs the original order.
    part = values.gather(np.sort(rows).tolist()).drop_nulls()
    n = part.len()
    if n < _MIN_ROWS:
        return None
    if numeric and not (part.dtype.is_integer() or _whole_numbers(part)):
        return None  # continuous measurements are distinct per row without being identifiers
    distinct = part.n_unique()
    if distinct >= _UNIQUE_SHARE * n:
        return f"{distinct:,} distinct values in {n:,} training rows"
    if numeric and distinct > n // 2:
        order = np.asarray(part.cast(pl.Float64).to_numpy())
        steps = np.diff(order)
        up, down = float(np.mean(steps >= 0)), float(np.mean(steps <= 0))
        if max(up, down) >= _MONOTONIC_SHARE:
            return f"it {'rises' if up >= down else 'falls'} with the row order"
    return None


def _whole_numbers(values: pl.Series) -> bool:
    array = np.asarray(values.cast(pl.Float64).to_numpy())
    return bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))


def _leak(
    values: pl.Series,
    y: np.ndarray[Any, Any],
    fit_rows: np.ndarray[Any, Any],
    check_rows: np.ndarray[Any, Any],
    task: Task,
    numeric: bool,
) -> str | None:
    """Score a one-column lookup table learned on ``fit_rows`` on ``check_rows``."""
    keys = _bin_keys(values, fit_rows, numeric)
    fit_keys, check_keys = keys[fit_rows], keys[check_rows]
    y_fit, y_check = y[fit_rows], y[check_rows]
    if task == "regression":
        overall = float(np.mean(y_fit))
        table = {k: float(np.mean(y_fit[fit_keys == k])) for k in np.unique(fit_keys)}
        pred = np.array([table.get(k, overall) for k in check_keys])
        total = float(np.sum((y_check - np.mean(y_check)) ** 2))
        if total <= 0:
            return None
        score = 1.0 - float(np.sum((y_check - pred) ** 2)) / total
        label = "R²"
    else:
        codes = y_fit.astype(np.int64)
        overall_class = int(np.bincount(codes).argmax())
        table_c = {k: int(np.bincount(codes[fit_keys == k]).argmax()) for k in np.unique(fit_keys)}
        pred = np.array([table_c.get(k, overall_class) for k in check_keys])
        truth = y_check.astype(np.int64)
        recalls = [float(np.mean(pred[truth == c] == c)) for c in np.unique(truth)]
        score = float(np.mean(recalls))
        label = "balanced accuracy"
    if score < _LEAK_SCORE:
        return None
    return f"alone it predicts the target with {label} {score:.3f} on validation rows"


def _bin_keys(values: pl.Series, fit_rows: np.ndarray[Any, Any], numeric: bool) -> Any:
    """Each row's bin: quantile bins of numbers (from ``fit_rows``), else the value itself."""
    if not numeric:
        return np.asarray(values.cast(pl.String).fill_null("\x00null").to_numpy(), dtype=object)
    array = np.asarray(values.cast(pl.Float64).to_numpy(), dtype=np.float64)
    fitted = array[fit_rows]
    fitted = fitted[np.isfinite(fitted)]
    if fitted.size == 0:
        return np.zeros(array.shape, dtype=np.int64)
    edges = np.unique(np.quantile(fitted, np.linspace(0, 1, _BINS + 1)[1:-1]))
    keys = np.searchsorted(edges, array, side="right")
    keys[~np.isfinite(array)] = -1
    return keys


# Scores above these (higher-is-better metrics bounded by 1) are rarer on real data than leaks.
_NEAR_PERFECT = 0.995
_NEAR_PERFECT_ROWS = 100


def near_perfect_warning(metric: str, test_score: float, test_rows: int) -> list[str]:
    """A warning when the test score is near perfect, which real tabular data seldom allows.

    Only for metrics bounded above by 1 (AUC, accuracy, F1, R², ...); a loss has no ceiling to
    be near. Not below ``_NEAR_PERFECT_ROWS`` test rows: 30 rows of an easy set (iris) are
    all right by chance often enough, and the card already calls such test sets rough.
    """
    if not greater_is_better(metric) or not np.isfinite(test_score):
        return []
    if test_rows < _NEAR_PERFECT_ROWS:
        return []
    if test_score < _NEAR_PERFECT:
        return []
    return [
        f"test {metric} {test_score:.4f} is near perfect, more than real data usually allows: "
        "check for columns written after the outcome or copies of the target"
    ]
