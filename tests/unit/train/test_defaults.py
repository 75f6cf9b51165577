"""Issue 16: the default ``train:`` is LightGBM's defaults fitted once, refitted on train +
validation, and warns about identifier-like and leaking columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_breast_cancer

from shipyard.track.resources import ResourceMeter, claim_process_start, process_cpu_seconds
from shipyard.train.evaluate import generalization_check
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train


def _cancer() -> pl.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return pl.from_pandas(frame)


def _mixed(rows: int = 1500, seed: int = 3) -> pl.DataFrame:
    """Categories with gaps, an ID column and a post-outcome column, as real exports have."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    tenure = rng.gamma(2.0, 12.0, rows)
    logit = -0.05 * tenure + np.where(plan == "basic", 1.0, -0.5)
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    refund = np.where(y == 1, "yes", "no")
    tenure[rng.random(rows) < 0.1] = np.nan
    return pl.DataFrame(
        {
            "row_id": np.arange(rows),
            "plan": pl.Series(np.where(rng.random(rows) < 0.05, None, plan), dtype=pl.String),
            "tenure": tenure,
            "noise": rng.normal(size=rows),
            "refund": refund,
            "churned": y,
        }
    )


def test_the_default_fits_lightgbm_once_with_its_library_defaults():
    seen = []
    result = train(
        TrainSpec(target="target", bootstrap_resamples=100), _cancer(), on_trial=seen.append
    )
    assert len(seen) == 1  # was 20 identical trials of 5 folds each
    assert len(result.tuning.trials) == 1
    assert result.tuning.best.estimator == "lightgbm"
    booster = result.model.named_steps["model"]
    assert booster.n_estimators == 100
    assert booster.num_leaves == 31
    assert booster.booster_.num_trees() == 100  # no early stopping slice
    assert "cv_mean" not in result.scores  # there were no folds: none is reported
    assert result.generalization.basis == "validation"
    assert result.scores["test"] > 0.97
    assert result.plots == {}
    assert result.importance == {}


def test_the_shipped_model_learns_from_train_and_validation_rows():
    frame = _cancer()
    result = train(TrainSpec(target="target", bootstrap_resamples=100), frame)
    sizes = result.split_sizes
    model = result.model.named_steps["model"]
    # LightGBM keeps no row count; its leaves' sample counts add up to the rows fitted.
    dump = model.booster_.dump_model()["tree_info"][0]["tree_structure"]
    assert dump["internal_count"] == sizes["train"] + sizes["validation"]


def test_native_categories_and_missing_values_reach_lightgbm_untouched():
    frame = _mixed()
    spec = TrainSpec(target="churned", exclude=["row_id", "refund"], bootstrap_resamples=100)
    result = train(spec, frame)
    pre = result.model.named_steps["preprocess"]
    out = pre.transform(frame.head(50).select(result.columns.features).to_pandas())
    tenure = result.columns.features.index("tenure")
    assert np.isnan(out[:, tenure]).sum() == frame.head(50)["tenure"].is_nan().sum()  # no imputing
    assert out.shape[1] == len(result.columns.features)  # codes, not one-hot
    unseen = frame.head(3).with_columns(pl.lit("enterprise").alias("plan"))
    proba = result.model.predict_proba(unseen.select(result.columns.features).to_pandas())
    assert proba.shape == (3, 2)
    assert np.all(np.isfinite(proba))


def test_id_and_leak_columns_are_warned_about_and_can_be_dropped():
    frame = _mixed()
    warned = train(TrainSpec(target="churned", bootstrap_resamples=100), frame)
    text = "\n".join(warned.warnings)
    assert "'row_id' is identifier-like" in text
    assert "'refund' is a likely leak" in text
    assert "'noise'" not in text
    assert "'tenure'" not in text
    assert "'plan'" not in text
    assert warned.summary()["warnings"] == warned.warnings
    dropped = train(TrainSpec(target="churned", drop_suspects=True, bootstrap_resamples=100), frame)
    assert set(dropped.dropped_columns) == {"row_id", "refund"}
    assert "row_id" not in dropped.columns.features
    assert "refund" not in dropped.columns.features
    assert dropped.scores["test"] < warned.scores["test"]  # the leak was doing the work


def test_clean_data_gets_no_column_warning():
    result = train(TrainSpec(target="target", bootstrap_resamples=100), _cancer())
    assert not [w for w in result.warnings if "identifier-like" in w or "likely leak" in w]


def test_a_search_still_tunes_with_cross_validation():
    spec = TrainSpec(
        target="target",
        estimators=[EstimatorSpec(name="logistic", space={"C": [0.1, 1.0]})],
        tuning={"trials": 2},
        cv={"folds": 3},
        bootstrap_resamples=100,
    )
    result = train(spec, _cancer())
    assert len(result.tuning.trials) == 2
    assert len(result.tuning.best.fold_scores) == 3
    assert "cv_mean" in result.scores


def test_a_boosted_tree_gap_is_not_overfitting_but_a_rigid_model_gap_is():
    # Training AUC 1.0 against held-out 0.93 is what boosted trees do on healthy data.
    folds = [0.92, 0.94, 0.93, 0.935, 0.925]
    flexible = generalization_check("roc_auc", 1.0, folds, 0.93, flexible=True)
    assert flexible.verdict == "ok"
    assert flexible.expected_gap is None
    assert "expected for this kind of model" in flexible.message
    assert generalization_check("roc_auc", 1.0, folds, 0.93).verdict == "overfit"


@pytest.mark.parametrize(
    ("test", "interval", "verdict"),
    [
        (0.90, (0.86, 0.94), "ok"),  # intervals overlap: noise
        (0.80, (0.76, 0.84), "unstable"),  # far below, beyond both intervals
    ],
)
def test_validation_versus_test_uses_intervals(test, interval, verdict):
    check = generalization_check(
        "roc_auc", 0.99, [], test, test_interval=interval, validation=(0.93, 0.89, 0.96),
        flexible=True,
    )  # fmt: skip
    assert check.verdict == verdict
    assert check.basis == "validation"


def test_a_claimed_meter_counts_the_whole_process():
    before = process_cpu_seconds()
    claim_process_start()
    claimed = ResourceMeter().finish()
    plain = ResourceMeter().finish()  # one claim, one meter
    assert claimed.cpu_seconds is not None
    assert plain.cpu_seconds is not None
    assert claimed.cpu_seconds >= before * 0.99
    assert plain.cpu_seconds < 0.5


def test_auto_search_starts_from_the_defaults_reports_its_price_and_keeps_its_budget():
    spec = TrainSpec(
        target="target",
        search="auto",
        budget_cpu_s=6.0,
        tuning={"trials": 200},
        cv={"folds": 3},
        bootstrap_resamples=100,
    )
    result = train(spec, _cancer())
    first = result.tuning.trials[0]
    assert first.estimator == "lightgbm"
    assert first.params["num_leaves"] == 31  # LightGBM's defaults are the first trial
    assert {t.estimator for t in result.tuning.trials} <= {"lightgbm", "xgboost", "logistic"}
    assert result.tuning.stopped_reason is not None  # budget or no gain beyond the noise
    assert len(result.tuning.trials) < 200
    assert sum(t.cpu_s for t in result.tuning.trials) < 6.0 * 1.5
    assert result.tuning.price is not None
    assert "vs LightGBM defaults" in result.tuning.price
