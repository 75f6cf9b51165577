"""Drift speed and memory: Shipyard's drift check vs. a plain numpy/scipy loop (the floor).

Same data for both: a reference of 100k training rows (profiled once, as at training time, with
the whole reference kept as the sample so KS compares the same samples) and a current window of
1M rows x 20 numeric + 5 categorical columns, a few of them shifted.

- Floor, per numeric column in a plain loop: ``scipy.stats.ks_2samp(reference, current)`` and a
  numpy PSI (``np.histogram`` of the current column on the stored quantile edges against the
  stored shares). Per categorical column: Polars ``value_counts``, then numpy chi-square
  (2 x categories table) and scipy's Jensen-Shannon distance.
- Shipyard: ``DriftReference.from_profile`` (sorts the reference sample; timed too) and
  ``compute_drift``, which computes more per numeric column: PSI, KS with its p-value,
  Wasserstein, missing and out-of-range rates (and PSI, chi-square, JS and rates per
  categorical column).

Times are medians of ``--repeat`` runs (floor and Shipyard alternate). Peak memory is measured
in a first, untimed run of each under ``tracemalloc`` (numpy and Python allocations; Polars' own
allocator is not traced). Target: Shipyard's time <= 1.2x the floor's.

Run: ``.venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference-rows 100000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from scipy import stats
from scipy.spatial.distance import jensenshannon

from shipyard.monitor.drift import DriftReference, compute_drift
from shipyard.train.reference import ReferenceProfile, build_reference

TIME_TARGET = 1.2
PSI_EPSILON = 1e-4
CATEGORIES = [f"c{i:02d}" for i in range(12)]


def generate(rows: int, numeric: int, categorical: int, seed: int, shifted: bool) -> pl.DataFrame:
    """``rows`` rows; with ``shifted``, the first numeric and categorical columns move."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(numeric):
        shift = 0.3 if shifted and i == 0 else 0.0
        values = (
            rng.normal(shift + i, 1.0 + i / 10, rows)
            if i % 2
            else rng.gamma(2.0 + i, 1.0 + shift, rows)
        )
        columns[f"n{i:02d}"] = values
    weights = np.linspace(1.0, 3.0, len(CATEGORIES))
    for i in range(categorical):
        p = weights[::-1] if shifted and i == 0 else weights
        columns[f"k{i}"] = rng.choice(CATEGORIES, rows, p=p / p.sum())
    return pl.DataFrame(columns)


def floor(
    profile: ReferenceProfile, reference: pl.DataFrame, current: pl.DataFrame
) -> dict[str, float]:
    """KS + numpy PSI per numeric column; counts + chi-square + JS per categorical column."""
    out: dict[str, float] = {}
    for name, ref in profile.features.items():
        if ref.kind == "numeric":
            r = reference.get_column(name).to_numpy()
            c = current.get_column(name).to_numpy()
            ks = stats.ks_2samp(r, c)
            bounds = np.r_[-np.inf, np.asarray(ref.edges), np.inf]
            counts, _ = np.histogram(c, bins=bounds)
            p = np.maximum(counts / c.size, PSI_EPSILON)
            q = np.maximum(np.asarray(ref.fractions), PSI_EPSILON)
            out[f"{name}.ks"] = float(ks.statistic)
            out[f"{name}.ks_p"] = float(ks.pvalue)
            out[f"{name}.psi"] = float(np.sum((p - q) * np.log(p / q)))
        else:
            categories = ref.categories or []
            tally = dict(current.get_column(name).value_counts().iter_rows())
            known = np.array([tally.get(k, 0) for k in categories], dtype=np.float64)
            observed = np.r_[known, current.height - known.sum()]
            expected = np.asarray(ref.fractions) * ref.count
            table = np.vstack([observed, expected])
            table = table[:, table.sum(axis=0) > 0]
            e = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
            chi2 = float(((table - e) ** 2 / e).sum())
            out[f"{name}.chi2_p"] = float(stats.chi2.sf(chi2, table.shape[1] - 1))
            out[f"{name}.js"] = float(jensenshannon(observed, np.asarray(ref.fractions), base=2))
    return out


def shipyard(profile: ReferenceProfile, current: pl.DataFrame) -> dict[str, float]:
    """The drift check as monitoring runs it: prepare the reference, compute, judge."""
    reference = DriftReference.from_profile(profile)
    report = compute_drift(reference, current, model="bench")
    out: dict[str, float] = {}
    for row in report.features:
        for s in row.statistics:
            out[f"{row.feature}.{s.statistic}"] = s.value
            if s.p_value is not None:
                out[f"{row.feature}.{s.statistic}_p"] = s.p_value
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_bytes(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="current window rows")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--numeric", type=int, default=20)
    parser.add_argument("--categorical", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    reference = generate(args.reference_rows, args.numeric, args.categorical, 1, shifted=False)
    current = generate(args.rows, args.numeric, args.categorical, 2, shifted=True)
    profile = build_reference(
        reference, reference.columns, sample_size=reference.height, top_k=len(CATEGORIES)
    )
    print(
        f"drift: reference {reference.height:,} rows, current {current.height:,} rows x "
        f"{args.numeric} numeric + {args.categorical} categorical columns, median of {args.repeat}"
    )

    # A first, untimed pass of each under tracemalloc: peak memory, and warm caches.
    floor_peak = peak_bytes(lambda: floor(profile, reference, current))
    ours_peak = peak_bytes(lambda: shipyard(profile, current))
    floor_times, ours_times = [], []
    floor_out: dict[str, float] = {}
    ours_out: dict[str, float] = {}
    for _ in range(args.repeat):
        seconds, floor_out = timed(lambda: floor(profile, reference, current))
        floor_times.append(seconds)
        seconds, ours_out = timed(lambda: shipyard(profile, current))
        ours_times.append(seconds)
    floor_s, ours_s = statistics.median(floor_times), statistics.median(ours_times)

    # Same numbers where both compute them (KS exactly; PSI and chi-square the same way).
    shared = sorted(set(floor_out) & set(ours_out))
    worst = max(abs(floor_out[k] - ours_out[k]) for k in shared)

    mib = 1 << 20
    print(
        f"  floor (ks_2samp + numpy PSI; counts + chi2 + JS): {floor_s:7.2f} s  "
        f"peak {floor_peak / mib:7.0f} MiB"
    )
    print(
        f"  shipyard (PSI, KS, Wasserstein, rates; PSI, chi2, JS, rates): {ours_s:7.2f} s  "
        f"peak {ours_peak / mib:7.0f} MiB"
    )
    print(f"  {len(shared)} statistics computed by both; largest difference {worst:.2e}")
    ratio = ours_s / floor_s
    verdict = "ok" if ratio <= TIME_TARGET else "MISS"
    print(f"RESULT drift_time ratio={ratio:.2f} target={TIME_TARGET} {verdict}")


if __name__ == "__main__":
    main()
