"""Learning curves on scikit-learn's breast cancer data: quality, cost, seeds, nested subsets."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

from shipyard.core.errors import InvalidArgument
from shipyard.cost.attribution import cpu_share_usd
from shipyard.cost.catalog import ActiveInstance, load_catalog
from shipyard.train.fitting import Candidate
from shipyard.train.learning_curve import (
    CurvePoint,
    LearningCurve,
    _nested_order,
    _take,
    check_fractions,
    learning_curve,
    parse_fractions,
)
from shipyard.train.spec import TrainSpec
from shipyard.train.splits import hold_out

SPEC = TrainSpec(target="target", metric="roc_auc", seed=0)
LOGISTIC = Candidate("logistic", {})


@pytest.fixture(scope="module")
def cancer() -> pl.DataFrame:
    data = load_breast_cancer(as_frame=True).frame
    return pl.from_pandas(data.rename(columns=lambda c: c.replace(" ", "_")))


@pytest.fixture(scope="module")
def instance() -> ActiveInstance:
    return ActiveInstance(load_catalog().instance("m5.large"), "on_demand")


def test_more_data_scores_at_least_as_well_on_the_same_test_rows(cancer, instance) -> None:
    curve = learning_curve(
        SPEC, cancer, LOGISTIC, fractions=(0.1, 0.5, 1.0), repeats=3, instance=instance
    )
    small, _, full = curve.points
    assert small.mean is not None
    assert full.mean is not None
    assert full.mean >= small.mean
    assert curve.metric == "roc_auc"
    assert curve.greater_is_better
    # the trainer's own split: the same test rows the production model was judged on
    y = cancer["target"].to_numpy()
    split = hold_out(SPEC.split, cancer, y, task="binary", seed=SPEC.seed)
    assert (curve.train_rows, curve.test_rows) == (len(split.train), len(split.test))
    assert full.rows == curve.train_rows
    assert [p.rows for p in curve.points] == sorted({p.rows for p in curve.points})
    assert all(len(p.scores) == 3 and len(p.cpu_seconds) == 3 for p in curve.points)
    # all rows, a deterministic solver: the repeats agree exactly
    assert full.std == 0.0
    for p in curve.points:
        assert p.cost_usd == cpu_share_usd(p.mean_cpu_seconds, instance.instance, instance.hourly)
    gains = curve.gains()
    assert [(g.from_fraction, g.to_fraction) for g in gains] == [(0.1, 0.5), (0.5, 1.0)]
    assert gains[0].score_delta == pytest.approx(curve.points[1].mean - small.mean)
    assert gains[0].per_doubling == pytest.approx(
        gains[0].score_delta / np.log2(curve.points[1].rows / small.rows)
    )
    assert curve.summary().startswith("going from 50% to 100% of the data")


def test_cpu_cost_grows_with_the_rows(cancer, instance) -> None:
    # 20 copies: enough rows that fitting, not per-fit overhead, dominates the CPU seconds
    many = pl.concat([cancer] * 20)
    curve = learning_curve(SPEC, many, LOGISTIC, fractions=(0.1, 1.0), repeats=2, instance=instance)
    small, full = curve.points
    assert full.rows > 9 * small.rows
    assert sum(full.cpu_seconds) > sum(small.cpu_seconds) > 0
    assert full.cost_usd is not None
    assert small.cost_usd is not None
    assert full.cost_usd > small.cost_usd > Decimal(0)


def test_the_same_seed_gives_the_same_numbers(cancer) -> None:
    def scores(seed: int) -> list[tuple[int, tuple[float | None, ...]]]:
        spec = SPEC.model_copy(update={"seed": seed})
        curve = learning_curve(spec, cancer, LOGISTIC, fractions=(0.1, 0.3), repeats=2)
        return [(p.rows, p.scores) for p in curve.points]

    first = scores(7)
    assert first == scores(7)
    assert first != scores(8)


def test_subsets_are_nested_and_stratified() -> None:
    y = np.array([0] * 80 + [1] * 20)
    order = _nested_order(y, "binary", seed=3)
    shares = [_take(order, f, "binary") for f in (0.1, 0.25, 0.5, 1.0)]
    for smaller, larger in pairwise(shares):
        assert set(smaller) < set(larger)
    assert [int(y[s].sum()) for s in shares] == [2, 5, 10, 20]  # the minority's share is kept
    assert [len(s) for s in shares] == [10, 25, 50, 100]
    tiny = _take(order, 0.01, "binary")
    assert sorted(set(y[tiny])) == [0, 1]  # every class keeps a row


def test_regression_curves_use_the_spec_metric() -> None:
    data = load_diabetes(as_frame=True).frame
    spec = TrainSpec(target="target", seed=0)
    curve = learning_curve(
        spec, pl.from_pandas(data), Candidate("linear", {}), fractions=(0.2, 1.0), repeats=1
    )
    assert curve.task == "regression"
    assert curve.metric == "rmse"
    assert not curve.greater_is_better
    assert all(p.cost_usd is None for p in curve.points)  # no instance: nothing priced
    small, full = curve.points
    assert full.mean is not None
    assert small.mean is not None
    assert full.mean < small.mean


def _point(fraction: float, rows: int, score: float, cpu: float) -> CurvePoint:
    return CurvePoint(fraction, rows, (score,), (cpu,), None)


@pytest.mark.parametrize(
    ("metric", "higher", "scores", "expected"),
    [
        (
            "roc_auc",
            True,
            (0.962, 0.966),
            "going from 50% to 100% of the data (100 to 200 rows) adds +0.0040 roc_auc "
            "(better) for 2.1x the training cost",
        ),
        (
            "rmse",
            False,
            (50.0, 48.5),
            "going from 50% to 100% of the data (100 to 200 rows) adds -1.5000 rmse "
            "(better) for 2.1x the training cost",
        ),
        (
            "roc_auc",
            True,
            (0.97, 0.96),
            "going from 50% to 100% of the data (100 to 200 rows) adds -0.0100 roc_auc "
            "(worse) for 2.1x the training cost",
        ),
    ],
)
def test_the_summary_says_what_the_last_step_buys(metric, higher, scores, expected) -> None:
    curve = LearningCurve(
        task="binary" if higher else "regression",
        metric=metric,
        greater_is_better=higher,
        candidate=LOGISTIC,
        train_rows=200,
        test_rows=50,
        repeats=1,
        seed=0,
        points=(_point(0.5, 100, scores[0], 0.010), _point(1.0, 200, scores[1], 0.021)),
    )
    assert curve.summary() == expected
    assert curve.gains()[0].per_doubling == pytest.approx(scores[1] - scores[0])


def test_a_step_inside_the_spread_of_repeats_says_so() -> None:
    points = (
        CurvePoint(0.5, 100, (0.95, 0.97), (0.01, 0.01), None),
        CurvePoint(1.0, 200, (0.961, 0.962), (0.02, 0.02), None),
    )
    curve = LearningCurve("binary", "roc_auc", True, LOGISTIC, 200, 50, 2, 0, points)
    assert curve.summary().endswith("within the spread of repeats (±0.0141)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "0 is not a share"),
        ("0.5,1.5", "1.5 is not a share"),
        ("-0.1,0.5", "-0.1 is not a share"),
        ("nan", "nan is not a share"),
        ("0.5,0.25", "must increase strictly.*0.5 is followed by 0.25"),
        ("0.25,0.5,0.5", "must increase strictly.*0.5 is followed by 0.5"),
        ("0.1,half", "'half' is not a number"),
        ("", "'' is not a number"),
        (",".join(["0.01"] * 21), "at most 20 shares"),
    ],
)
def test_bad_fractions_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_fractions(text)


def test_good_fractions_parse() -> None:
    assert parse_fractions(" 0.1, 0.25,1") == (0.1, 0.25, 1.0)
    assert check_fractions([1.0]) == (1.0,)
    with pytest.raises(InvalidArgument, match="at least one"):
        check_fractions([])


def test_repeats_are_bounded(cancer) -> None:
    with pytest.raises(InvalidArgument, match="--repeats must be 1 to 20"):
        learning_curve(SPEC, cancer, LOGISTIC, repeats=0)


def test_the_summary_prices_the_last_doubling_of_the_data() -> None:
    points = tuple(
        _point(f, int(400 * f), 0.9 + 0.01 * i, 0.01 * (i + 1))
        for i, f in enumerate((0.1, 0.25, 0.5, 0.75, 1.0))
    )
    curve = LearningCurve("binary", "roc_auc", True, LOGISTIC, 400, 100, 1, 0, points)
    assert curve.summary() == (
        "going from 50% to 100% of the data (200 to 400 rows) adds +0.0200 roc_auc (better) "
        "for 1.7x the training cost"
    )
    assert len(curve.gains()) == 4  # the table still shows every step
