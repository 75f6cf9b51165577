"""Drift of a window against the training profile: what is flagged, what is not, bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument, NotFound
from shipyard.monitor.drift import DriftConfig, DriftReference, FeatureThresholds, compute_drift
from shipyard.train.reference import build_reference

NUMERIC = ["x0", "x1", "x2", "x3", "x4"]
CATEGORICAL = ["plan", "region"]
PLANS, PLAN_P = ["basic", "plus", "pro"], [0.5, 0.3, 0.2]
REGIONS, REGION_P = ["north", "south", "east", "west"], [0.4, 0.3, 0.2, 0.1]
SCALES = [1.0, 2.0, 5.0, 0.5, 10.0]


def rows(n: int, seed: int, *, shift: dict[str, float] | None = None) -> pl.DataFrame:
    """``n`` rows of the training distribution; ``shift`` moves means (in standard deviations)."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    data: dict[str, object] = {
        name: rng.normal(shift.get(name, 0.0) * scale, scale, n) * 1.0 + 3.0 * i
        for i, (name, scale) in enumerate(zip(NUMERIC, SCALES, strict=True))
    }
    data["x4"] = rng.gamma(2.0, SCALES[4], n)  # one skewed feature
    data["plan"] = rng.choice(PLANS, n, p=PLAN_P)
    data["region"] = rng.choice(REGIONS, n, p=REGION_P)
    frame = pl.DataFrame(data)
    missing = rng.random(n) < 0.02  # training and serving both miss 2% of x1
    x1 = pl.when(pl.Series(missing)).then(None).otherwise(pl.col("x1")).alias("x1")
    return frame.with_columns(x1)


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    profile = build_reference(rows(20_000, seed=0), [*NUMERIC, *CATEGORICAL], sample_size=5000)
    return DriftReference.from_profile(profile)


def test_a_half_std_shift_of_one_feature_is_flagged_on_that_feature_only(
    reference: DriftReference,
) -> None:
    report = compute_drift(reference, rows(5000, seed=1, shift={"x2": 0.5}), model="churn")
    assert report.drifted == ["x2"]
    shifted = report.feature("x2")
    ks = shifted.get("ks")
    assert ks is not None
    assert ks.breached
    assert ks.p_value is not None
    assert ks.p_value < report.alpha_per_test
    wasserstein = shifted.get("wasserstein")
    assert wasserstein is not None
    assert wasserstein.breached
    assert wasserstein.detail["std_units"] == pytest.approx(0.5, abs=0.1)
    for name in [*NUMERIC, *CATEGORICAL]:
        if name != "x2":
            assert not report.feature(name).drifted, report.feature(name)


def test_false_alarms_over_twenty_unshifted_windows_are_rare(reference: DriftReference) -> None:
    flagged = 0
    features = 0
    for seed in range(100, 120):
        report = compute_drift(reference, rows(5000, seed=seed))
        flagged += len(report.drifted)
        features += len(report.features)
    rate = flagged / features
    print(f"false alarms: {flagged} of {features} feature-windows ({rate:.2%})")
    assert features == 20 * 7
    assert flagged <= 1


def test_tests_are_bonferroni_corrected_and_the_note_says_so(reference: DriftReference) -> None:
    report = compute_drift(reference, rows(2000, seed=2))
    assert report.tests == 7  # KS for 5 numeric + chi-square for 2 categorical
    assert report.correction == "bonferroni"
    assert report.alpha_per_test == pytest.approx(0.01 / 7)
    assert "7 hypothesis tests" in report.multiple_testing_note
    assert "Bonferroni" in report.multiple_testing_note
    plain = compute_drift(reference, rows(2000, seed=2), config=DriftConfig(correction="none"))
    assert plain.alpha_per_test == 0.01
    assert "no correction" in plain.multiple_testing_note


def test_every_feature_gets_its_statistics(reference: DriftReference) -> None:
    report = compute_drift(reference, rows(1000, seed=3))
    assert [f.feature for f in report.features] == [*NUMERIC, *CATEGORICAL]
    numeric = [s.statistic for s in report.feature("x0").statistics]
    assert numeric == ["psi", "ks", "wasserstein", "missing_rate", "out_of_range_rate"]
    categorical = [s.statistic for s in report.feature("plan").statistics]
    assert categorical == ["psi", "chi2", "jensen_shannon", "missing_rate", "out_of_range_rate"]
    missing = report.feature("x1").get("missing_rate")
    assert missing is not None
    assert missing.value == pytest.approx(0.02, abs=0.01)
    assert missing.threshold == pytest.approx(missing.detail["reference"] + 0.05)


def test_observations_and_table_carry_every_statistic(reference: DriftReference) -> None:
    report = compute_drift(
        reference,
        rows(3000, seed=4, shift={"x0": 1.0}).with_columns(ts_ms=pl.lit(1_000, pl.Int64)),
        model="churn",
        version=3,
        variant="primary",
    )
    observations = report.observations()
    assert len(observations) == sum(len(f.statistics) for f in report.features)
    assert {o.kind for o in observations} == {"drift"}
    assert {(o.model, o.version, o.variant) for o in observations} == {("churn", 3, "primary")}
    assert {(o.window_start_ms, o.window_end_ms) for o in observations} == {(1_000, 1_001)}
    breached = {(o.subject, o.statistic) for o in observations if o.breached}
    assert ("x0", "ks") in breached
    assert {subject for subject, _ in breached} == {"x0"}
    ks = next(o for o in observations if (o.subject, o.statistic) == ("x0", "ks"))
    assert ks.detail["p_value"] < ks.detail["alpha"]
    table = report.to_frame()
    assert table.height == len(observations)
    assert table.filter(pl.col("breached")).get_column("feature").unique().to_list() == ["x0"]


def test_a_feature_missing_from_the_window_is_reported_absent(reference: DriftReference) -> None:
    report = compute_drift(reference, rows(500, seed=5).drop("x3", "region"))
    for name in ["x3", "region"]:
        row = report.feature(name)
        assert row.status == "absent"
        assert row.present == 0
        assert [s.statistic for s in row.statistics] == ["missing_rate"]
        assert row.drifted  # a feature that stopped arriving is drift
    assert report.tests == 5


def test_an_all_null_column_is_all_missing(reference: DriftReference) -> None:
    frame = rows(500, seed=6).with_columns(
        pl.lit(None, pl.Float64).alias("x0"), pl.lit(None, pl.String).alias("plan")
    )
    report = compute_drift(reference, frame)
    for name in ["x0", "plan"]:
        row = report.feature(name)
        assert row.status == "all_missing"
        missing = row.get("missing_rate")
        assert missing is not None
        assert missing.value == 1.0
        assert missing.breached
    assert sorted(report.drifted) == ["plan", "x0"]


def test_an_empty_window_is_a_clear_error(reference: DriftReference) -> None:
    with pytest.raises(InvalidArgument, match="no rows"):
        compute_drift(reference, rows(10, seed=7).head(0))


def test_text_in_a_numeric_feature_is_a_clear_error(reference: DriftReference) -> None:
    frame = rows(50, seed=8).with_columns(pl.col("x0").cast(pl.String))
    with pytest.raises(InvalidArgument, match="'x0' is numeric"):
        compute_drift(reference, frame)


def test_unknown_categories_are_out_of_domain_and_drift(reference: DriftReference) -> None:
    frame = rows(2000, seed=9)
    unseen = pl.Series(np.where(np.arange(2000) % 4 == 0, "enterprise", frame["plan"].to_numpy()))
    report = compute_drift(reference, frame.with_columns(plan=unseen))
    plan = report.feature("plan")
    outside = plan.get("out_of_range_rate")
    assert outside is not None
    assert outside.value == pytest.approx(0.25)
    assert outside.breached
    chi2 = plan.get("chi2")
    assert chi2 is not None
    assert chi2.breached
    assert report.drifted == ["plan"]


def test_nan_is_missing_and_infinity_is_out_of_range(reference: DriftReference) -> None:
    frame = rows(2000, seed=10)
    x0 = frame["x0"].to_numpy().copy()
    x0[:200] = np.nan
    x0[200:400] = np.inf
    report = compute_drift(reference, frame.with_columns(x0=pl.Series(x0)))
    row = report.feature("x0")
    assert row.present == 1800
    values = {s.statistic: s for s in row.statistics}
    assert values["missing_rate"].value == pytest.approx(0.1)
    assert values["out_of_range_rate"].value == pytest.approx(200 / 1800, abs=0.002)
    assert values["missing_rate"].breached
    assert values["out_of_range_rate"].breached
    assert all(np.isfinite(s.value) for s in row.statistics)


def test_small_windows_are_measured_but_not_judged(reference: DriftReference) -> None:
    report = compute_drift(reference, rows(40, seed=11, shift={"x2": 3.0}))
    assert report.drifted == []
    assert report.feature("x2").status == "few_rows"
    psi = report.feature("x2").get("psi")
    assert psi is not None
    assert psi.value > 1.0
    assert any("min_rows" in note for note in report.notes)


def test_thresholds_per_feature_and_from_the_project_file_shape(
    reference: DriftReference,
) -> None:
    frame = rows(3000, seed=12, shift={"x2": 0.5})
    lenient = DriftConfig(alpha=1e-300, features={"x2": FeatureThresholds(psi=5, wasserstein=5)})
    assert compute_drift(reference, frame, config=lenient).drifted == []
    skip = DriftConfig(features={"x2": FeatureThresholds(skip=True)})
    skipped = compute_drift(reference, frame, config=skip)
    assert "x2" not in [f.feature for f in skipped.features]
    config = DriftConfig.from_thresholds(
        {"psi": {"*": 0.5, "x3": 0.01}, "missing_rate": {"*": 0.2}}
    )
    assert config.limit("x3", "psi") == 0.01
    assert config.limit("x0", "psi") == 0.5
    assert config.missing_increase == 0.2
    with pytest.raises(InvalidArgument, match="no drift threshold for statistic"):
        DriftConfig.from_thresholds({"psy": {"*": 0.1}})
    with pytest.raises(InvalidArgument, match="invalid drift thresholds"):
        DriftConfig.from_thresholds({"psi": {"*": -1.0}})


def test_asking_for_an_unknown_feature_names_the_known_ones(reference: DriftReference) -> None:
    report = compute_drift(reference, rows(200, seed=13))
    with pytest.raises(NotFound, match="x0, x1"):
        report.feature("nope")
