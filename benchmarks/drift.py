"""Drift memory and CPU: Shipyard's full-reference drift check vs. plain numpy/scipy (the floor).

Issue #17: drift on 1M rows x 20 numeric columns against the *full* reference (exact KS over
every training row, not the bundle's bounded sample) peaked at 1.23 GiB RSS, 1.9x a numpy floor.
Target: peak RSS <= 1.5x the floor's.

The data is generated once, before anything is timed, into a temporary folder: the reference
rows (``reference.parquet``), the current window (``current.parquet``, a few columns shifted
and one with 1% NaN) and the reference profile Shipyard stores with a bundle (bin edges, bin
shares, min/max/std per feature, ``profile.json``). Each side then runs as its own child
process (``harness.run_child``: peak RSS and CPU seconds from ``wait4``), sides interleaved,
one ratio per repetition.

Same work on both sides, per numeric column, reading the same files:

- **Floor**: plain numpy/scipy, one column at a time (``pl.read_parquet`` of that column
  from each file: Polars' reader peaks 30-40 MiB lower than pyarrow's first
  ``ParquetFile.read``, so the floor takes the leaner one): the two-sample KS statistic with
  scipy's p-value and the Wasserstein distance of the finite values (what
  ``scipy.stats.ks_2samp`` and ``wasserstein_distance`` compute, from one sort per sample and
  one merge, see ``ks_and_wasserstein``: calling both scipy functions costs 2.5x the CPU, a
  floor Shipyard would beat), PSI on the stored edges against the stored shares, the missing
  rate and the out-of-range rate (outside the stored [min, max]); the bin counts and the
  range come from ``searchsorted`` of the one sorted column.
- **Shipyard**: ``DriftReference.from_profile(profile, full_reference=...)`` and
  ``compute_drift(reference, current_path)`` with the default ``DriftConfig``, which computes
  exactly these statistics (and judges them against thresholds).

Both sides' statistics are compared before any verdict: a floor that disagrees (or does less)
is refused. RESULT lines: ``drift_peak_rss`` (target 1.5, issue #17) and ``drift_cpu``
(CPU seconds, target 1.2: the drift check's speed target of the monitoring issue, now against
a floor that does the same work instead of less).

Run: ``.venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference-rows 1000000]``
(about 3 minutes on 2 busy cores); ``make bench`` uses ``--rows 200000 --reference-rows 200000``.
A reference much smaller than the window is not a full-reference workload: there Shipyard's KS,
read at the reference points only, does less work than any merge of both samples, and the
harness rightly refuses the floor (``drift_cpu`` MISS, "Shipyard beat the floor").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness import Comparison, report, run_child

RSS_TARGET = 1.5
CPU_TARGET = 1.2
PSI_EPSILON = 1e-4  # shipyard.monitor.drift_stats.PSI_EPSILON
TOLERANCE = 1e-9


def generate(path: Path, rows: int, numeric: int, seed: int, shifted: bool) -> None:
    """Write ``rows`` x ``numeric`` columns; with ``shifted``, two columns move, one has NaN."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(numeric):
        shift = 0.3 if shifted and i in (0, 1) else 0.0
        values = (
            rng.normal(shift + i, 1.0 + i / 10, rows)
            if i % 2
            else rng.gamma(2.0 + i, 1.0 + shift, rows)
        )
        if shifted and i == 3:
            values[rng.random(rows) < 0.01] = np.nan
        columns[f"n{i:02d}"] = values
    pq.write_table(pa.table(columns), path)


def prepare(folder: Path, rows: int, reference_rows: int, numeric: int) -> None:
    """The files both sides read; the profile is built as training builds it."""
    import polars as pl

    from shipyard.train.reference import build_reference

    generate(folder / "reference.parquet", reference_rows, numeric, 1, shifted=False)
    generate(folder / "current.parquet", rows, numeric, 2, shifted=True)
    reference = pl.read_parquet(folder / "reference.parquet")
    profile = build_reference(reference, reference.columns, sample_size=0)
    (folder / "profile.json").write_text(json.dumps(profile.to_dict()))


def floor(folder: Path) -> dict[str, float]:
    """Plain numpy + scipy, one column of each file at a time, freed as soon as it is used."""
    import numpy as np
    import polars as pl

    profile = json.loads((folder / "profile.json").read_text())
    out: dict[str, float] = {}
    for name, ref in profile["features"].items():
        r = pl.read_parquet(folder / "reference.parquet", columns=[name]).to_series().to_numpy()
        r_finite = r[np.isfinite(r)]
        del r
        r_finite.sort()
        c = pl.read_parquet(folder / "current.parquet", columns=[name]).to_series().to_numpy()
        rows = c.size
        present = c[~np.isnan(c)]
        del c
        # One sort per column; the histogram, the range and the finite values are then
        # searchsorted slices of it (np.histogram would sort again for uneven bins).
        present.sort()
        c_finite = present[
            np.searchsorted(present, -np.inf, side="right") : np.searchsorted(
                present, np.inf, side="left"
            )
        ]
        ks, ks_p, w = ks_and_wasserstein(r_finite, c_finite)
        cuts = np.searchsorted(present, np.asarray(ref["edges"]), side="left")
        counts = np.diff(np.r_[0, cuts, present.size])
        p = np.maximum(counts / present.size, PSI_EPSILON)
        q = np.maximum(np.asarray(ref["fractions"]), PSI_EPSILON)
        outside = np.searchsorted(present, ref["min"], side="left") + (
            present.size - np.searchsorted(present, ref["max"], side="right")
        )
        out[f"{name}.psi"] = float(np.sum((p - q) * np.log(p / q)))
        out[f"{name}.ks"] = ks
        out[f"{name}.ks_p"] = ks_p
        out[f"{name}.wasserstein"] = w
        out[f"{name}.missing_rate"] = (rows - present.size) / rows
        out[f"{name}.out_of_range_rate"] = outside / present.size
    return out


def ks_and_wasserstein(u: Any, v: Any) -> tuple[float, float, float]:
    """KS statistic, its p-value and the Wasserstein distance of two sorted samples.

    scipy's ``ks_2samp`` and ``wasserstein_distance`` each sort (or argsort) both samples and
    their union again and evaluate the two CDFs on it; here the samples are sorted once, the
    union is a stable merge of two sorted runs (linear), and both statistics read the same two
    CDFs: the sums and maxima scipy computes, at the cost a careful floor would pay. The
    p-value is scipy's, chosen as ``ks_2samp(method="auto")`` chooses it.
    """
    import numpy as np
    from scipy import stats

    merged = np.concatenate([u, v])
    merged.sort(kind="stable")  # timsort: two sorted runs merge in linear time
    # |F_u - F_v| * n_u * n_v in integers, built in place: three merged-length arrays at most.
    gaps = np.searchsorted(u, merged, side="right")
    gaps *= v.size
    other = np.searchsorted(v, merged, side="right")
    other *= u.size
    gaps -= other
    del other
    np.abs(gaps, out=gaps)
    scale = float(u.size) * float(v.size)
    d = float(gaps.max()) / scale
    deltas = np.diff(merged)
    del merged
    np.multiply(deltas, gaps[:-1], out=deltas)
    w = float(deltas.sum()) / scale
    if max(u.size, v.size) <= 10_000:
        p = float(stats.ks_2samp(u, v).pvalue)
    else:
        p = float(stats.kstwo.sf(d, np.round(u.size * v.size / (u.size + v.size))))
    return d, p, w


def shipyard(folder: Path) -> dict[str, float]:
    """The drift check with the full reference streamed from its Parquet file."""
    from shipyard.monitor.drift import DriftReference, compute_drift
    from shipyard.train.reference import ReferenceProfile

    profile = ReferenceProfile.from_dict(json.loads((folder / "profile.json").read_text()))
    reference = DriftReference.from_profile(profile, full_reference=folder / "reference.parquet")
    result = compute_drift(reference, folder / "current.parquet", model="bench")
    out: dict[str, float] = {}
    for row in result.features:
        for s in row.statistics:
            out[f"{row.feature}.{s.statistic}"] = s.value
            if s.p_value is not None:
                out[f"{row.feature}.{s.statistic}_p"] = s.p_value
    return out


def disagreements(floor_out: dict[str, float], ours: dict[str, float]) -> list[str]:
    """Statistics the floor computes that Shipyard lacks or computes differently."""
    bad = []
    for key, expected in floor_out.items():
        got = ours.get(key)
        if got is None or not math.isclose(got, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE):
            bad.append(f"{key}: floor {expected!r}, shipyard {got!r}")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current window rows")
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--numeric", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["floor", "shipyard"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side = floor if args.child == "floor" else shipyard
        print(json.dumps(side(args.dir)))
        return

    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        folder = Path(tmp)
        prepare(folder, args.rows, args.reference_rows, args.numeric)
        rss = Comparison("drift_peak_rss", RSS_TARGET, unit="MiB")
        cpu = Comparison("drift_cpu", CPU_TARGET, unit="cpu-s")
        argv = [sys.executable, __file__, "--dir", str(folder), "--child"]
        results: dict[str, dict[str, float]] = {}
        for i in range(max(args.repeat, 3)):
            order = ("floor", "shipyard") if i % 2 == 0 else ("shipyard", "floor")
            usage = {side: run_child([*argv, side]) for side in order}
            results = {side: u.json() for side, u in usage.items()}  # type: ignore[misc]
            rss.add(usage["floor"].max_rss_bytes / 2**20, usage["shipyard"].max_rss_bytes / 2**20)
            cpu.add(usage["floor"].cpu_s, usage["shipyard"].cpu_s)
    bad = disagreements(results["floor"], results["shipyard"])
    title = (
        f"drift: full reference {args.reference_rows:,} rows, current {args.rows:,} rows x "
        f"{args.numeric} numeric columns; {len(results['floor'])} statistics from each side"
    )
    if bad:
        # A floor that computes something else proves nothing: no "ok" for any line.
        print(title)
        print(f"  ! the sides disagree on {len(bad)} statistics, e.g. " + "; ".join(bad[:3]))
        for c in (rss, cpu):
            print(c.describe())
            print(f"RESULT {c.name} ratio={c.ratio:.3f} target={c.target:g} MISS")
        return
    print(f"  all {len(results['floor'])} floor statistics agree within {TOLERANCE:g}")
    report(title, [rss, cpu])


if __name__ == "__main__":
    main()
