"""The promotion gate on real bundles, its scores checked against scikit-learn called directly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score, root_mean_squared_error

from shipyard.core.errors import InvalidArgument
from shipyard.registry.bundle import Bundle, read_bundle
from shipyard.registry.gate import run_gate
from tests.unit.registry.bundles import (
    TARGET,
    WEAK,
    bundle_bytes,
    held_out,
    sklearn_model,
)


def load(tmp_path: Path, task: str = "binary", **kwargs: object) -> Bundle:
    return read_bundle(bundle_bytes(tmp_path, task, **kwargs))  # type: ignore[arg-type]


def auc(task: str, features: list[str] | None = None) -> float:
    frame = held_out(task)
    model = sklearn_model(task, features)
    names = features or [c for c in frame.columns if c != TARGET[task]]
    proba = model.predict_proba(frame.select(names).to_pandas())[:, 1]
    return float(roc_auc_score(frame[TARGET[task]].to_numpy(), proba))


def rmse(features: list[str] | None = None) -> float:
    frame = held_out("regression")
    model = sklearn_model("regression", features)
    names = features or [c for c in frame.columns if c != TARGET["regression"]]
    pred = model.predict(frame.select(names).to_pandas())
    return float(root_mean_squared_error(frame[TARGET["regression"]].to_numpy(), pred))


def test_a_worse_candidate_is_refused_with_both_scores(tmp_path: Path) -> None:
    good = load(tmp_path)
    weak = load(tmp_path, features=WEAK["binary"], name="weak")
    verdict = run_gate(weak, good, held_out("binary"), margin=0.0)
    assert not verdict.passed
    assert verdict.metric == "roc_auc"
    assert verdict.greater_is_better
    assert verdict.candidate_score == pytest.approx(auc("binary", WEAK["binary"]))
    assert verdict.champion_score == pytest.approx(auc("binary"))
    assert verdict.rows == held_out("binary").height
    failed = [c.name for c in verdict.checks if not c.passed]
    assert failed == ["beats_holder"]
    assert "not better" in verdict.summary()
    stored = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))  # JSON-safe
    assert stored["passed"] is False
    assert stored["checks"][-1]["name"] == "beats_holder"


def test_a_better_candidate_passes_and_the_margin_counts(tmp_path: Path) -> None:
    good = load(tmp_path)
    weak = load(tmp_path, features=WEAK["binary"], name="weak")
    frame = held_out("binary")
    verdict = run_gate(good, weak, frame, margin=0.0)
    assert verdict.passed, verdict.checks
    gain = auc("binary") - auc("binary", WEAK["binary"])
    assert run_gate(good, weak, frame, margin=gain - 0.01).passed
    assert not run_gate(good, weak, frame, margin=gain + 0.01).passed
    same = run_gate(good, good, frame, margin=0.0)
    assert not same.passed  # equal is not better
    with pytest.raises(InvalidArgument, match="margin"):
        run_gate(good, weak, frame, margin=-0.1)
    with pytest.raises(InvalidArgument, match="margin"):
        run_gate(good, weak, frame, margin=math.nan)


def test_without_a_holder_only_contract_and_sanity_count(tmp_path: Path) -> None:
    weak = load(tmp_path, features=WEAK["binary"], name="weak")
    verdict = run_gate(weak, None, held_out("binary"), margin=0.5)
    assert verdict.passed
    assert verdict.champion_score is None
    assert [c.name for c in verdict.checks] == ["contract", "candidate_sanity", "beats_holder"]


def test_lower_is_better_for_rmse(tmp_path: Path) -> None:
    good = load(tmp_path, "regression")
    weak = load(tmp_path, "regression", features=WEAK["regression"], name="weak")
    frame = held_out("regression")
    refused = run_gate(weak, good, frame, margin=0.0)
    assert not refused.greater_is_better
    assert refused.candidate_score == pytest.approx(rmse(WEAK["regression"]))
    assert refused.champion_score == pytest.approx(rmse())
    assert refused.candidate_score > refused.champion_score
    assert not refused.passed
    assert run_gate(good, weak, frame, margin=0.0).passed


def test_contract_problems_refuse_before_scoring(tmp_path: Path) -> None:
    good = load(tmp_path)
    frame = held_out("binary")
    missing = run_gate(good, None, frame.drop("mean_radius"), margin=0.0)
    assert not missing.passed
    assert missing.candidate_score is None
    assert "mean_radius" in missing.checks[0].detail
    no_target = run_gate(good, None, frame.drop(TARGET["binary"]), margin=0.0)
    assert "no target column" in no_target.checks[0].detail
    strange = frame.with_columns(pl.lit(7).alias(TARGET["binary"]))
    assert "does not know" in run_gate(good, None, strange, margin=0.0).checks[0].detail
    retyped = frame.with_columns(pl.lit("abc").alias("mean_radius"))
    assert "mean_radius" in run_gate(good, None, retyped, margin=0.0).checks[0].detail
    assert "empty" in run_gate(good, None, frame.head(0), margin=0.0).checks[0].detail
    regression = load(tmp_path, "regression", name="reg")
    other = run_gate(good, regression, frame, margin=0.0)
    assert not other.passed
    assert "the holder" in other.checks[0].detail


def test_a_constant_model_fails_sanity(tmp_path: Path) -> None:
    constant = load(tmp_path, constant=True, name="constant")
    verdict = run_gate(constant, None, held_out("binary"), margin=0.0)
    assert not verdict.passed
    sanity = next(c for c in verdict.checks if c.name == "candidate_sanity")
    assert not sanity.passed
    assert "same answer" in sanity.detail


def test_rows_without_a_target_are_left_out_and_said(tmp_path: Path) -> None:
    good = load(tmp_path)
    frame = held_out("binary")
    target = frame[TARGET["binary"]].to_list()
    gappy = frame.with_columns(
        pl.Series(TARGET["binary"], [None if i < 10 else v for i, v in enumerate(target)])
    )
    verdict = run_gate(good, None, gappy, margin=0.0)
    assert verdict.passed
    assert "10 row(s) without a target" in verdict.checks[1].detail
    names = [c for c in frame.columns if c != TARGET["binary"]]
    rest = frame.slice(10)
    proba = sklearn_model("binary").predict_proba(rest.select(names).to_pandas())[:, 1]
    expected = roc_auc_score(np.asarray(rest[TARGET["binary"]].to_list()), proba)
    assert verdict.candidate_score == pytest.approx(expected)


def test_training_warnings_are_in_the_verdict_without_blocking(tmp_path: Path) -> None:
    warning = "column 'customer_id' is identifier-like: 900 distinct values in 900 training rows"
    metrics = {"warnings": [warning]}
    candidate = load(tmp_path, metrics=metrics, name="warned")
    verdict = run_gate(candidate, None, held_out("binary"), margin=0.0)
    check = next(c for c in verdict.checks if c.name == "training_warnings")
    assert check.passed
    assert "customer_id" in check.detail
    assert verdict.passed
    plain = run_gate(load(tmp_path), None, held_out("binary"), margin=0.0)
    assert "training_warnings" not in {c.name for c in plain.checks}
