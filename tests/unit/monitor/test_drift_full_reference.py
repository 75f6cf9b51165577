"""Drift against the full reference, read column by column, and the bounded sample's accuracy.

Issue #17: a full-reference comparison held both tables (and the reference three times over)
in memory. These tests pin that streaming gives exactly the in-memory numbers, that the
bounded sample (the bundle's sketch) stays within stated tolerances of the exact statistics,
and that a child process comparing two Parquet files peaks far below the tables' size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pytest

from shipyard.core.errors import InvalidArgument
from shipyard.monitor.drift import DriftReference, compute_drift
from shipyard.monitor.drift_report import DriftReport, FeatureDrift
from shipyard.train.reference import build_reference

if TYPE_CHECKING:
    from pathlib import Path

KS_TOLERANCE = 0.03
"""|KS(sample) - KS(full)| <= sup |F_sample - F_full|; for 5,000 rows the DKW inequality
bounds P(sup > 0.03) by 2 exp(-2 * 5000 * 0.03**2) = 2.5e-4."""
WASSERSTEIN_TOLERANCE = 0.05
"""In reference standard deviations."""


def known(n: int, seed: int, shift: float = 0.0) -> pl.DataFrame:
    """Normal, skewed (gamma), uniform and heavy-tailed (Student t) columns, 1% NaN in one."""
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame(
        {
            "normal": rng.normal(shift, 1.0, n),
            "gamma": rng.gamma(2.0, 1.0 + shift, n),
            "uniform": rng.uniform(shift, 1.0 + shift, n),
            "student": rng.standard_t(3, n) + shift,
            "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    gaps = pl.Series(rng.random(n) < 0.01)
    return frame.with_columns(
        pl.when(gaps).then(np.nan).otherwise(pl.col("normal")).alias("normal")
    )


def statistics(report: DriftReport) -> dict[str, float]:
    out = {}
    for row in report.features:
        for s in row.statistics:
            out[f"{row.feature}.{s.statistic}"] = s.value
            if s.p_value is not None:
                out[f"{row.feature}.{s.statistic}.p"] = s.p_value
    return out


@pytest.fixture(scope="module")
def training() -> pl.DataFrame:
    return known(60_000, seed=0)


@pytest.fixture(scope="module")
def window() -> pl.DataFrame:
    return known(40_000, seed=1, shift=0.05)


def test_streaming_the_full_reference_gives_the_in_memory_exact_numbers(
    tmp_path: Path, training: pl.DataFrame, window: pl.DataFrame
) -> None:
    # In memory: the whole training table as the sample, so KS is exact over every row.
    exact = DriftReference.from_profile(
        build_reference(training, training.columns, sample_size=training.height)
    )
    training.write_parquet(tmp_path / "training.parquet")
    window.write_parquet(tmp_path / "window.parquet")
    profile = build_reference(training, training.columns, sample_size=0)
    streamed = DriftReference.from_profile(profile, full_reference=tmp_path / "training.parquet")
    assert streamed.has_sample
    want = statistics(compute_drift(exact, window))
    for current in (window, window.lazy(), tmp_path / "window.parquet"):
        got = statistics(compute_drift(streamed, current))
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_the_bounded_sample_is_within_the_stated_tolerance_of_the_full_reference(
    tmp_path: Path, training: pl.DataFrame
) -> None:
    training.write_parquet(tmp_path / "training.parquet")
    profile = build_reference(training, training.columns, sample_size=5000)
    sketch = DriftReference.from_profile(profile)
    full = DriftReference.from_profile(profile, full_reference=tmp_path / "training.parquet")
    for shift in (0.0, 0.1, 0.5):
        current = known(50_000, seed=7, shift=shift)
        approx, exact = compute_drift(sketch, current), compute_drift(full, current)
        for name in ("normal", "gamma", "uniform", "student"):
            a, e = approx.feature(name), exact.feature(name)
            std = profile.features[name].std or 1.0
            assert _value(a, "ks") == pytest.approx(_value(e, "ks"), abs=KS_TOLERANCE)
            w_gap = abs(_value(a, "wasserstein") - _value(e, "wasserstein")) / std
            assert w_gap <= WASSERSTEIN_TOLERANCE, (name, shift)
            # PSI and the rates come from the stored counts and edges: no sampling at all.
            for statistic in ("psi", "missing_rate", "out_of_range_rate"):
                assert a.get(statistic) == e.get(statistic), (name, statistic)
            if shift == 0.5:  # a clear shift is flagged either way
                assert a.drifted
                assert e.drifted


def _value(row: FeatureDrift, statistic: str) -> float:
    result = row.get(statistic)
    assert result is not None, f"{row.feature} has no {statistic}"
    return result.value


def test_a_missing_parquet_path_is_refused_with_what_to_do(tmp_path: Path) -> None:
    profile = build_reference(known(1000, seed=0), ["normal"], sample_size=100)
    with pytest.raises(InvalidArgument, match=r"no Parquet file at .*nowhere\.parquet"):
        DriftReference.from_profile(profile, full_reference=tmp_path / "nowhere.parquet")
    with pytest.raises(InvalidArgument, match=r"no Parquet file at"):
        compute_drift(DriftReference.from_profile(profile), tmp_path / "nowhere.parquet")


def test_text_in_a_numeric_column_of_a_streamed_reference_is_refused(tmp_path: Path) -> None:
    frame = known(2000, seed=0)
    profile = build_reference(frame, ["normal"], sample_size=0)
    frame.select(pl.col("plan").alias("normal")).write_parquet(tmp_path / "bad.parquet")
    reference = DriftReference.from_profile(profile, full_reference=tmp_path / "bad.parquet")
    with pytest.raises(InvalidArgument, match=r"feature 'normal' is numeric .* holds String"):
        compute_drift(reference, frame)


# The worker runs in a fresh interpreter started by a small launcher: Linux carries a process's
# peak RSS across exec, so a worker spawned straight from pytest would report pytest's peak.
_WORKER = """
import resource, sys
from pathlib import Path
from shipyard.monitor.drift import DriftReference, compute_drift
from shipyard.train.reference import ReferenceProfile
import json
folder = Path(sys.argv[1])
profile = ReferenceProfile.from_dict(json.loads((folder / "profile.json").read_text()))
reference = DriftReference.from_profile(profile, full_reference=folder / "reference.parquet")
report = compute_drift(reference, folder / "current.parquet")
assert len(report.features) == len(profile.features)
"""
_LAUNCHER = """
import resource, subprocess, sys
subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _peak_rss(folder: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, textwrap.dedent(_WORKER), str(folder)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(done.stdout.split()[-1])


def _tables(folder: Path, rows: int, columns: int) -> int:
    """Write reference and current Parquet files and the profile; return their in-memory bytes."""
    rng = np.random.default_rng(rows)
    folder.mkdir()
    reference = pl.DataFrame({f"x{i:02d}": rng.normal(0, 1, rows) for i in range(columns)})
    current = pl.DataFrame({f"x{i:02d}": rng.normal(0.1, 1, rows) for i in range(columns)})
    reference.write_parquet(folder / "reference.parquet", compression="uncompressed")
    current.write_parquet(folder / "current.parquet", compression="uncompressed")
    profile = build_reference(reference, reference.columns, sample_size=0)
    (folder / "profile.json").write_text(json.dumps(profile.to_dict()))
    return int(reference.estimated_size() + current.estimated_size())


@pytest.mark.slow
@pytest.mark.timeout(600)  # two child runs over 2 x 96 MB; ~20 s on a quiet 2-core machine
def test_a_full_reference_run_reads_columns_in_blocks_not_whole_tables(tmp_path: Path) -> None:
    tables = _tables(tmp_path / "big", rows=200_000, columns=60)  # 2 x 96 MB in memory
    _tables(tmp_path / "small", rows=2_000, columns=60)  # same imports and code path
    grown = _peak_rss(tmp_path / "big") - _peak_rss(tmp_path / "small")
    # Holding both tables would grow the peak by at least `tables`; streaming holds a block
    # of a few columns of each plus one column's temporaries.
    assert grown < tables / 2, f"peak grew {grown / 2**20:.0f} MiB for {tables / 2**20:.0f} MiB"
