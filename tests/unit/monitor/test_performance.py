"""Performance from feedback labels: metrics and intervals per window, and concept drift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.performance import (
    ModelFacts,
    auc_interval,
    canonical_label,
    concept_drift,
    performance_observations,
    wilson,
)
from shipyard.registry.manifest import BundleManifest, FeatureField

T0 = 1_700_000_000_000
BINARY = ModelFacts("binary", "1", {"accuracy": 0.85, "error_rate": 0.15, "roc_auc": 0.85})
FLIP_AT = 400
# Measured with the default detectors on this seeded stream (error rate 15% -> 85% at label
# 400): both detectors flag it at label index 422, i.e. 23 labels after the flip. Over 100
# seeds of the same stream ADWIN needed at most 32 labels (median 24) and Page-Hinkley at most
# 35 (median 25), with no firing in the 400 labels before the flip (docs/monitoring.md).
FLAGGED_AT = 422
MAX_LABELS_TO_FLAG = 35


def stream(
    seed: int = 0, n: int = 800, flip_at: int | None = FLIP_AT, accuracy: float = 0.85
) -> pl.DataFrame:
    """Labelled predictions of a binary model that is right 85% of the time, until the labels
    flip (concept drift: the same inputs now mean the other class)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    right = rng.random(n) < accuracy
    predicted = np.where(right, truth, 1 - truth)
    probability = np.clip(np.where(predicted == 1, 0.8, 0.2) + rng.normal(0, 0.1, n), 0.01, 0.99)
    label = truth.copy()
    if flip_at is not None:
        label[flip_at:] = 1 - truth[flip_at:]
    return pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "model": "churn",
            "version": 1,
            "variant": "production",
            "ts_ms": T0 + np.arange(n) * 1000,
            "prediction": predicted.astype(str),
            "probability": probability,
            "status": 200,
            "label": label.astype(str),
        }
    )


def by(observations, **match):  # type: ignore[no-untyped-def]
    return [o for o in observations if all(getattr(o, k) == v for k, v in match.items())]


def test_canonical_labels_compare_by_value() -> None:
    assert canonical_label(1) == canonical_label("1") == canonical_label("1.0") == "1"
    assert canonical_label(True) == canonical_label("true") == "true"
    assert canonical_label(" churned ") == "churned"
    assert canonical_label(0.25) == "0.25"


def test_wilson_and_auc_intervals() -> None:
    assert wilson(8, 10, 0.95) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = wilson(0, 10, 0.95)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert 0.2 < high < 0.35  # never the degenerate [0, 0] of the plain normal interval
    low, high = auc_interval(0.8, 50, 50, 0.95)
    assert low < 0.8 < high
    assert high - low == pytest.approx(2 * 1.96 * 0.0441, abs=0.01)  # Hanley & McNeil's table
    assert auc_interval(1.0, 5, 5, 0.95)[1] == 1.0


def test_binary_metrics_match_scikit_learn_and_carry_intervals() -> None:
    joined = stream(flip_at=None, n=300)
    obs = performance_observations(joined, model="churn", facts=BINARY)
    names = [o.statistic for o in obs]
    assert names == ["accuracy", "error_rate", "roc_auc", "log_loss", "brier"]
    y = (joined["label"] == "1").cast(pl.Int64).to_numpy()
    p = joined["probability"].to_numpy()
    accuracy = (joined["label"] == joined["prediction"]).mean()
    values = {o.statistic: o.value for o in obs}
    assert values["accuracy"] == pytest.approx(accuracy)
    assert values["error_rate"] == pytest.approx(1 - accuracy)
    assert values["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert values["log_loss"] == pytest.approx(log_loss(y, p))
    assert values["brier"] == pytest.approx(brier_score_loss(y, p))
    for o in obs:
        assert o.kind == "performance"
        assert (o.version, o.variant, o.subject) == (1, "production", "*")
        assert o.detail["low"] <= o.value <= o.detail["high"]
        assert o.detail["n"] == 300
        assert not o.breached  # a healthy model is not worse than its test metrics
    assert by(obs, statistic="accuracy")[0].threshold == 0.85


def test_windows_by_count_and_by_time_per_version_and_variant() -> None:
    base = stream(flip_at=None, n=250)
    shadow = base.with_columns(version=pl.lit(2), variant=pl.lit("shadow:challenger"))
    joined = pl.concat([base, shadow])
    counted = by(
        performance_observations(joined, model="churn", facts=BINARY, window_labels=100),
        statistic="accuracy",
    )
    assert [(o.version, o.variant, o.detail["n"]) for o in counted] == [
        (1, "production", 100),
        (1, "production", 100),
        (1, "production", 50),
        (2, "shadow:challenger", 100),
        (2, "shadow:challenger", 100),
        (2, "shadow:challenger", 50),
    ]
    assert counted[0].window_start_ms == T0
    assert counted[0].window_end_ms == T0 + 99_000 + 1
    minute = 60_000
    timed = by(
        performance_observations(base, model="churn", facts=BINARY, window_ms=minute),
        statistic="accuracy",
    )
    assert sum(o.detail["n"] for o in timed) == 250
    for o in timed:
        assert o.window_start_ms % minute == 0
        assert o.window_end_ms - o.window_start_ms == minute


def test_a_clear_drop_is_breached_only_when_the_interval_clears_the_baseline() -> None:
    flipped = stream(n=600, flip_at=300)
    windows = by(
        performance_observations(flipped, model="churn", facts=BINARY, window_labels=300),
        statistic="accuracy",
    )
    assert [o.breached for o in windows] == [False, True]
    assert windows[1].detail["high"] < 0.85
    assert by(
        performance_observations(flipped, model="churn", facts=BINARY, window_labels=300),
        statistic="roc_auc",
    )[1].breached
    # Two right of three (67%) is below 85%, but three labels prove nothing; none right of
    # three would (0.15 ** 3 is improbable), and Wilson's interval says so.
    few = flipped.slice(0, 3).with_columns(label=pl.Series(["1", "1", "0"]), prediction=pl.lit("1"))
    assert not by(performance_observations(few, model="churn", facts=BINARY), statistic="accuracy")[
        0
    ].breached
    none = few.with_columns(prediction=pl.lit("2"))
    assert by(performance_observations(none, model="churn", facts=BINARY), statistic="accuracy")[
        0
    ].breached


def test_regression_mae_and_rmse() -> None:
    rng = np.random.default_rng(1)
    truth = rng.normal(100, 10, 200)
    predicted = truth + rng.normal(0, 2, 200)
    joined = stream(flip_at=None, n=200).with_columns(
        prediction=pl.Series(predicted).cast(pl.String),
        label=pl.Series(truth).cast(pl.String),
    )
    facts = ModelFacts("regression", None, {"mae": 1.0, "rmse": 1.2})
    obs = {o.statistic: o for o in performance_observations(joined, model="m", facts=facts)}
    residual = predicted - truth
    assert obs["mae"].value == pytest.approx(np.abs(residual).mean())
    assert obs["rmse"].value == pytest.approx(np.sqrt((residual**2).mean()))
    assert obs["mae"].detail["low"] < obs["mae"].value < obs["mae"].detail["high"]
    assert obs["rmse"].breached  # errors of ~2 against a test MAE of 1
    assert obs["mae"].breached


def test_label_flip_is_flagged_by_both_detectors_within_the_stated_labels() -> None:
    obs = concept_drift(stream(seed=0), model="churn", facts=BINARY)
    for name in ("adwin", "page_hinkley"):
        fired = by(obs, statistic=name, value=1.0)
        assert [o.detail["label_index"] for o in fired] == [FLAGGED_AT]
        first = fired[0]
        assert first.kind == "concept"
        assert first.breached  # error went up, above the test error rate
        assert first.detail["error_after"] > 0.5 > first.detail["error_before"]
        assert first.detail["request_id"] == f"r{FLAGGED_AT}"
        assert first.threshold == pytest.approx(0.15)
        assert FLAGGED_AT - FLIP_AT + 1 <= MAX_LABELS_TO_FLAG


def test_a_stable_stream_leaves_quiet_observations() -> None:
    obs = concept_drift(stream(seed=3, flip_at=None), model="churn", facts=BINARY)
    assert [(o.statistic, o.value, o.breached) for o in obs] == [
        ("adwin", 0.0, False),
        ("page_hinkley", 0.0, False),
    ]
    assert obs[0].detail == {"labels": 800}


def test_an_improvement_fires_but_is_not_worse() -> None:
    rng = np.random.default_rng(5)
    errors = np.r_[rng.random(300) < 0.6, rng.random(300) < 0.05]
    joined = stream(n=600, flip_at=None).with_columns(
        label=pl.when(pl.Series(errors)).then(pl.lit("x")).otherwise(pl.col("prediction"))
    )
    fired = by(concept_drift(joined, model="churn", facts=BINARY), statistic="adwin", value=1.0)
    assert fired
    assert not any(o.breached for o in fired)


def test_facts_from_a_manifest() -> None:
    manifest = BundleManifest(
        task="binary",
        target="churned",
        features=[FeatureField(name="tenure", dtype="float64", nullable=False)],
        classes=[0, 1],
        primary_metric="roc_auc",
        metrics={"test": {"accuracy": {"value": 0.8, "low": 0.7, "high": 0.9}, "r2": None}},
        created_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    facts = ModelFacts.from_manifest(manifest)
    assert facts.task == "binary"
    assert facts.positive_label == "1"
    assert facts.baseline == pytest.approx({"accuracy": 0.8, "error_rate": 0.2})


@pytest.mark.parametrize(
    "kwargs",
    [{"window_labels": 10, "window_ms": 10}, {"window_labels": 0}, {"confidence": 1.0}],
)
def test_bad_window_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        performance_observations(stream(n=10), model="m", facts=BINARY, **kwargs)  # type: ignore[arg-type]
