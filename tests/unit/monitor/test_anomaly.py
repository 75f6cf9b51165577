"""Input anomaly scores against the training reference, service anomalies from the log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.anomaly import (
    InputAnomalyScorer,
    input_anomalies,
    robust_z,
    service_anomalies,
)
from shipyard.monitor.logfiles import SCHEMA, read_prediction_log, write_part_atomic
from shipyard.train.reference import build_reference

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_700_000_000_000
MINUTE = 60_000


@pytest.fixture(scope="module")
def training() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    n = 4000
    return pl.DataFrame(
        {
            "charges": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "plus", "pro", "gold"], n, p=[0.5, 0.3, 0.199, 0.001]),
            "constant": np.full(n, 7.0),
        }
    )


@pytest.fixture(scope="module")
def scorer(training: pl.DataFrame) -> InputAnomalyScorer:
    profile = build_reference(training, ["charges", "plan", "constant"], sample_size=2000)
    return InputAnomalyScorer.from_reference(profile.to_dict(), profile.sample)


def test_numeric_scores_are_robust_z_scores(scorer: InputAnomalyScorer) -> None:
    assert scorer.features == ["charges", "plan"]  # no spread, no score: constant is left out
    scores = scorer.score_frame(
        pl.DataFrame({"charges": [50.0, 80.0, 20.0, None, float("nan")], "plan": [None] * 5})
    ).to_list()
    assert scores[0] == pytest.approx(0.0, abs=0.15)
    assert scores[1] == pytest.approx(3.0, abs=0.2)  # three standard deviations out
    assert scores[2] == pytest.approx(3.0, abs=0.2)
    assert scores[3:] == [None, None]  # missing values score nothing


def test_categories_score_by_rarity(scorer: InputAnomalyScorer) -> None:
    scores = dict(
        zip(
            ["basic", "gold", "never-seen"],
            scorer.score_frame(
                pl.DataFrame({"plan": ["basic", "gold", "never-seen"], "charges": [50.0] * 3})
            ).to_list(),
            strict=True,
        )
    )
    assert scores["basic"] < 1  # half the training rows
    assert 2.5 < scores["gold"] < 4.5  # about one in a thousand
    assert scores["never-seen"] > scores["gold"]


def test_a_request_scores_as_its_worst_row(scorer: InputAnomalyScorer) -> None:
    columns: dict[str, list[Any]] = {"charges": [50.0, 150.0, 49.0], "plan": ["basic"] * 3}
    assert scorer.score_columns(columns) == pytest.approx(10.0, abs=0.7)
    assert scorer.score_columns({"charges": ["not a number"], "plan": [None]}) is None
    assert scorer.score_columns({"other": [1]}) is None
    assert scorer.score_columns({"charges": [1.0, 2.0], "plan": ["basic"]}) is None  # ragged


def test_without_a_sample_the_profile_quartiles_give_about_the_same_scale(
    training: pl.DataFrame, scorer: InputAnomalyScorer
) -> None:
    profile = build_reference(training, ["charges"], bins=20).to_dict()
    from_profile = InputAnomalyScorer.from_reference(profile)
    frame = pl.DataFrame({"charges": [20.0, 65.0, 90.0]})
    assert from_profile.score_frame(frame).to_list() == pytest.approx(
        scorer.score_frame(frame).to_list(), rel=0.1
    )


def test_not_a_reference_profile() -> None:
    with pytest.raises(InvalidArgument, match="no 'features'"):
        InputAnomalyScorer.from_reference({"bins": 3})


def test_old_log_parts_without_the_anomaly_column_still_read(tmp_path: Path) -> None:
    old_schema = {k: v for k, v in SCHEMA.items() if k != "anomaly_score"}
    row = {
        "request_id": "old",
        "model": "m",
        "version": 1,
        "variant": "production",
        "ts_ms": T0,
        "latency_ms": 1.0,
        "inputs_json": "{}",
        "outputs_json": "{}",
        "prediction": "1",
        "probability": None,
        "status": 200,
    }
    folder = tmp_path / "date=2023-11-14/hour=22"
    write_part_atomic(folder, pl.DataFrame([row], schema=old_schema, orient="row"))
    write_part_atomic(
        folder,
        pl.DataFrame(
            [{**row, "request_id": "new", "anomaly_score": 2.5}], schema=SCHEMA, orient="row"
        ),
    )
    log = read_prediction_log(tmp_path).sort("request_id").collect()
    assert log.schema == pl.Schema(SCHEMA)
    assert log.select("request_id", "anomaly_score").rows() == [("new", 2.5), ("old", None)]
    assert input_anomalies(log, threshold=2.0)["request_id"].to_list() == ["new"]


def service_log(windows: list[dict[str, Any]], now: int) -> pl.DataFrame:
    """One row per request; window k ends k minutes before ``now``."""
    rows = []
    for k, spec in enumerate(windows):
        end = now - k * MINUTE
        n = spec.get("n", 60)
        for i in range(n):
            rows.append(
                {
                    "request_id": f"w{k}-{i}",
                    "model": "churn",
                    "version": 1,
                    "variant": spec.get("variant", "production"),
                    "ts_ms": end - MINUTE + i * (MINUTE // n),
                    "latency_ms": spec.get("latency", 10.0) + (i % 5),
                    "inputs_json": "{}",
                    "outputs_json": "{}",
                    "prediction": "1",
                    "probability": 0.5,
                    "status": 500 if i < spec.get("errors", 0) else 200,
                    "anomaly_score": 9.0 if i < spec.get("odd", 0) else 1.0,
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def test_a_steady_service_has_no_anomalies() -> None:
    now = T0 + 100 * MINUTE
    obs = service_anomalies(
        service_log([{}] * 13, now), model="churn", now_ms=now, window_ms=MINUTE
    )
    assert {(o.kind, o.statistic) for o in obs} == {
        ("service", "latency_p99_ms"),
        ("service", "error_rate"),
        ("service", "request_rate_per_s"),
        ("anomaly", "input_anomaly_rate"),
    }
    assert not any(o.breached for o in obs)
    rate = next(o for o in obs if o.statistic == "request_rate_per_s")
    assert rate.value == pytest.approx(1.0)
    assert (rate.window_start_ms, rate.window_end_ms) == (now - MINUTE, now)


def test_latency_errors_bursts_and_odd_inputs_in_the_latest_window_are_flagged() -> None:
    now = T0 + 100 * MINUTE
    latest = {"latency": 200.0, "errors": 30, "n": 600, "odd": 300}
    # The shadow's slow answers in the trailing windows must not hide the spike.
    shadow = [{"variant": "shadow:challenger", "latency": 500.0}] * 12
    log = pl.concat(
        [
            service_log([latest, *[{}] * 12], now),
            service_log([{"variant": "shadow:challenger"}, *shadow], now),
        ]
    )
    obs = {
        o.statistic: o for o in service_anomalies(log, model="churn", now_ms=now, window_ms=MINUTE)
    }
    assert obs["latency_p99_ms"].breached
    assert obs["latency_p99_ms"].value > 190
    assert obs["error_rate"].breached
    assert obs["error_rate"].value == pytest.approx(
        30 / 600
    )  # 5%: flagged; 2% would not be (floor)
    assert obs["request_rate_per_s"].breached
    assert obs["request_rate_per_s"].value == pytest.approx(10.0)
    assert obs["request_rate_per_s"].detail["trailing_median"] == pytest.approx(1.0)
    assert obs["input_anomaly_rate"].breached
    assert obs["input_anomaly_rate"].kind == "anomaly"


def test_a_traffic_drop_is_flagged_and_short_histories_are_not_judged() -> None:
    now = T0 + 100 * MINUTE
    dropped = service_log([{"n": 1}, *[{"n": 60}] * 12], now)
    obs = {
        o.statistic: o
        for o in service_anomalies(dropped, model="churn", now_ms=now, window_ms=MINUTE)
    }
    assert obs["request_rate_per_s"].breached
    short = service_log([{}] * 3, now)  # two trailing windows with requests, ten empty
    judged = service_anomalies(short, model="churn", now_ms=now, window_ms=MINUTE)
    assert [o.statistic for o in judged] == ["request_rate_per_s"]  # empty windows count 0
    assert service_anomalies(dropped, model="other", now_ms=now, window_ms=MINUTE)[0].value == 0.0


def test_robust_z_and_arguments() -> None:
    assert robust_z(10.0, [10.0, 10.0, 10.0]) == 0.0
    assert robust_z(11.0, [10.0, 10.0, 10.0]) == pytest.approx(10.0)  # 1% of the median
    assert robust_z(20.0, [8.0, 10.0, 12.0]) == pytest.approx(10 / (2 * 1.4826), rel=1e-3)
    with pytest.raises(InvalidArgument):
        service_anomalies(pl.DataFrame(schema=SCHEMA), model="m", now_ms=T0, window_ms=0)
    with pytest.raises(InvalidArgument):
        service_anomalies(
            pl.DataFrame(schema=SCHEMA), model="m", now_ms=T0, window_ms=1, min_trailing=20
        )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    charges=st.lists(
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-9, 9)),
        min_size=1,
        max_size=4,
    ),
    plans=st.lists(
        st.one_of(st.none(), st.sampled_from(["basic", "gold", "new", "1"])), max_size=4
    ),
)
def test_the_per_request_path_agrees_with_the_frame_path(
    scorer: InputAnomalyScorer, charges: list[Any], plans: list[Any]
) -> None:
    """score_columns (numpy, per request) must equal the Polars frame scoring on any input."""
    columns: dict[str, list[Any]] = {
        "charges": charges,
        "plan": (plans + [None] * 4)[: len(charges)],
    }
    fast = scorer.score_columns(columns)
    frame = scorer.score_frame(
        pl.DataFrame(columns, schema={"charges": pl.Float64, "plan": pl.String})
    )
    slow = frame.max()
    if slow is None:
        assert fast is None
    else:
        assert fast == pytest.approx(float(slow), rel=1e-12)  # type: ignore[arg-type]
