import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from shipyard.core.errors import InvalidData
from shipyard.train.imbalance import make_sampler, tune_threshold
from shipyard.train.spec import ImbalanceSpec, ThresholdSpec


def _scores(seed=0, n=2000):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(int)
    p = np.clip(0.25 * y + rng.normal(0.3, 0.15, n), 0, 1)
    return y, p


def test_f1_threshold_beats_every_other_cut():
    y, p = _scores()
    choice = tune_threshold(ThresholdSpec(goal="f1"), y, p)
    best = f1_score(y, p >= choice.threshold)
    assert choice.f1 == pytest.approx(best)
    for t in np.linspace(0.05, 0.95, 37):
        assert f1_score(y, p >= t) <= best + 1e-12


def test_recall_at_precision_meets_the_floor_with_most_recall():
    y, p = _scores()
    choice = tune_threshold(ThresholdSpec(goal="recall_at_precision", min_precision=0.5), y, p)
    decided = p >= choice.threshold
    assert precision_score(y, decided) >= 0.5
    assert choice.recall == pytest.approx(recall_score(y, decided))
    for t in np.linspace(0.05, 0.95, 91):
        d = p >= t
        if d.any() and precision_score(y, d) >= 0.5:
            assert recall_score(y, d) <= choice.recall + 1e-12


def test_unreachable_precision_says_so():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.6])  # the most confident prediction is wrong
    choice = tune_threshold(ThresholdSpec(goal="recall_at_precision", min_precision=0.9), y, p)
    assert "unreachable" in choice.goal
    assert choice.precision == pytest.approx(0.5)


def test_cost_goal_minimizes_expected_cost():
    y, p = _scores()
    spec = ThresholdSpec(goal="cost", cost_false_positive=1, cost_false_negative=20)
    choice = tune_threshold(spec, y, p)

    def cost(t):
        d = p >= t
        return (np.sum(d & (y == 0)) + 20 * np.sum(~d & (y == 1))) / len(y)

    assert choice.expected_cost == pytest.approx(cost(choice.threshold))
    assert all(cost(t) >= choice.expected_cost - 1e-12 for t in np.linspace(0.01, 0.99, 99))
    # Expensive misses push the threshold below the F1 one.
    assert choice.threshold < tune_threshold(ThresholdSpec(goal="f1"), y, p).threshold


def test_samplers_and_their_limits():
    assert make_sampler(ImbalanceSpec(), seed=0, minority_rows=10) is None
    assert (
        type(make_sampler(ImbalanceSpec(resample="smote"), seed=0, minority_rows=3)).__name__
        == "SMOTE"
    )
    assert make_sampler(ImbalanceSpec(resample="smote"), seed=0, minority_rows=3).k_neighbors == 2
    with pytest.raises(InvalidData, match="SMOTE needs"):
        make_sampler(ImbalanceSpec(resample="smote"), seed=0, minority_rows=1)
    with pytest.raises(ValueError, match="choose one"):
        ImbalanceSpec(class_weight="balanced", resample="under")
