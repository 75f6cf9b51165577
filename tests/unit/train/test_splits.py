import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import InvalidData
from shipyard.train.spec import CVSpec, SplitSpec
from shipyard.train.splits import cv_folds, cv_splitter, hold_out


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "x": rng.normal(size=n),
            "group": rng.integers(0, 20, size=n),
            "t": np.arange(n)[::-1],  # newest rows first in the frame
        }
    )


def _disjoint_cover(split, n):
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert sum(len(p) for p in parts) == n
    assert set().union(*parts) == set(range(n))


def test_stratified_split_keeps_class_shares_and_covers_every_row_once():
    frame = _frame()
    y = np.array([1] * 20 + [0] * 180)
    split = hold_out(SplitSpec(), frame, y, task="binary", seed=0)
    _disjoint_cover(split, 200)
    for part in (split.train, split.validation, split.test):
        assert abs(y[part].mean() - 0.1) < 0.03


def test_group_split_keeps_each_group_on_one_side():
    frame = _frame()
    y = np.zeros(200)
    split = hold_out(
        SplitSpec(strategy="group", group_column="group"), frame, y, task="regression", seed=0
    )
    _disjoint_cover(split, 200)
    g = frame["group"].to_numpy()
    sides = [set(g[split.train]), set(g[split.validation]), set(g[split.test])]
    assert not sides[0] & sides[1]
    assert not sides[0] & sides[2]
    assert not sides[1] & sides[2]


def test_time_split_puts_newest_rows_in_test():
    frame = _frame()
    split = hold_out(
        SplitSpec(strategy="time", time_column="t"), frame, np.zeros(200), task="regression", seed=0
    )
    _disjoint_cover(split, 200)
    t = frame["t"].to_numpy()
    assert t[split.train].max() < t[split.validation].min()
    assert t[split.validation].max() < t[split.test].min()


def test_too_few_rows_and_unsplittable_classes_are_clear_errors():
    with pytest.raises(InvalidData, match="too few"):
        hold_out(SplitSpec(), _frame(10), np.zeros(10), task="regression", seed=0)
    y = np.array([1] + [0] * 199)  # one positive cannot be stratified
    with pytest.raises(InvalidData, match="stratified"):
        hold_out(SplitSpec(), _frame(), y, task="binary", seed=0)


def test_split_spec_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="group_column"):
        SplitSpec(strategy="group")
    with pytest.raises(ValueError, match="at least 20%"):
        SplitSpec(test_size=0.45, validation_size=0.4)


def test_auto_cv_follows_task_and_split():
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold, TimeSeriesSplit

    assert isinstance(cv_splitter(CVSpec(), SplitSpec(), "binary", seed=0), StratifiedKFold)
    assert isinstance(cv_splitter(CVSpec(), SplitSpec(), "regression", seed=0), KFold)
    group = SplitSpec(strategy="group", group_column="g")
    assert isinstance(cv_splitter(CVSpec(), group, "binary", seed=0), GroupKFold)
    time = SplitSpec(strategy="time", time_column="t")
    assert isinstance(cv_splitter(CVSpec(), time, "regression", seed=0), TimeSeriesSplit)


def test_cv_folds_are_fixed_and_group_safe():
    frame = _frame()
    groups = frame["group"].to_numpy()
    folds = cv_folds(
        cv_splitter(CVSpec(strategy="group", folds=4), SplitSpec(), "regression", seed=0),
        frame,
        np.zeros(200),
        groups,
    )
    assert len(folds) == 4
    for train, valid in folds:
        assert not set(groups[train]) & set(groups[valid])
