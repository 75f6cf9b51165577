"""Honest splits: which rows train, which tune the threshold, which judge the model once.

Row indices, not frames, cross these functions, so every later step can prove which rows it
touched. Group splits keep every row of a group on one side; time splits put the newest rows in
validation and test, the way the model will meet data after deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.errors import InvalidData

if TYPE_CHECKING:
    import polars as pl

    from shipyard.train.spec import CVSpec, SplitSpec, Task

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class HoldOut:
    """Disjoint row indices of the three sets."""

    train: IntArray
    validation: IntArray
    test: IntArray

    def sizes(self) -> dict[str, int]:
        """Row counts per set (logged with the run)."""
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def split_strategy(spec: SplitSpec, task: Task) -> str:
    """Resolve ``auto``: stratified for classification, random for regression."""
    if spec.strategy != "auto":
        return spec.strategy
    return "random" if task == "regression" else "stratified"


def hold_out(
    spec: SplitSpec, frame: pl.DataFrame, y: np.ndarray[Any, Any], *, task: Task, seed: int
) -> HoldOut:
    """Split rows into train / validation / test per ``spec``.

    Raises:
        InvalidData: Too few rows (or groups, or rows of a class) for the requested split.
    """
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    n = len(y)
    strategy = split_strategy(spec, task)
    rows = np.arange(n, dtype=np.int64)
    holdout_size = spec.test_size + spec.validation_size
    test_share = spec.test_size / holdout_size
    if n < 20:
        raise InvalidData(f"train: {n} rows are too few to split; at least 20 are needed")
    if strategy == "time":
        assert spec.time_column is not None
        order = np.argsort(frame[spec.time_column].to_numpy(), kind="stable").astype(np.int64)
        n_test = max(1, round(n * spec.test_size))
        n_val = max(1, round(n * spec.validation_size))
        return HoldOut(
            order[: n - n_test - n_val], order[n - n_test - n_val : n - n_test], order[n - n_test :]
        )
    if strategy == "group":
        assert spec.group_column is not None
        groups = frame[spec.group_column].to_numpy()
        if len(np.unique(groups)) < 3:
            raise InvalidData(
                f"train: group split needs at least 3 distinct {spec.group_column!r} values"
            )
        outer = GroupShuffleSplit(n_splits=1, test_size=holdout_size, random_state=seed)
        train, rest = next(outer.split(rows, groups=groups))
        inner = GroupShuffleSplit(n_splits=1, test_size=test_share, random_state=seed)
        val_pos, test_pos = next(inner.split(rest, groups=groups[rest]))
        return HoldOut(rows[train], rows[rest[val_pos]], rows[rest[test_pos]])
    stratify = y if strategy == "stratified" else None
    try:
        train, rest = train_test_split(
            rows, test_size=holdout_size, stratify=stratify, random_state=seed
        )
        val, test = train_test_split(
            rest,
            test_size=test_share,
            stratify=None if stratify is None else y[rest],
            random_state=seed,
        )
    except ValueError as e:
        raise InvalidData(
            f"train: cannot make a {strategy} split: {e}; use more rows or split.strategy: random"
        ) from e
    return HoldOut(np.sort(train), np.sort(val), np.sort(test))


def cv_splitter(spec: CVSpec, split: SplitSpec, task: Task, *, seed: int) -> Any:
    """Return the scikit-learn splitter used on the training rows."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    strategy: str = spec.strategy
    if strategy == "auto":
        strategy = {
            "group": "group",
            "time": "time_series",
        }.get(split_strategy(split, task), "kfold" if task == "regression" else "stratified")
    if strategy == "stratified":
        return StratifiedKFold(spec.folds, shuffle=True, random_state=seed)
    if strategy == "group":
        return GroupKFold(spec.folds)
    if strategy == "time_series":
        return TimeSeriesSplit(spec.folds)
    return KFold(spec.folds, shuffle=True, random_state=seed)


def cv_folds(
    splitter: Any, x: Any, y: np.ndarray[Any, Any], groups: np.ndarray[Any, Any] | None
) -> list[tuple[IntArray, IntArray]]:
    """Materialize the folds once so every trial is scored on exactly the same rows.

    Raises:
        InvalidData: The splitter cannot make its folds from these rows (too few per class).
    """
    try:
        return [
            (np.asarray(a, np.int64), np.asarray(b, np.int64))
            for a, b in splitter.split(x, y, groups)
        ]
    except ValueError as e:
        raise InvalidData(f"train: cross-validation cannot split the training rows: {e}") from e
