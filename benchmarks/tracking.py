"""Tracking write speed: per-call and batch metric logging vs. raw sqlite3 ``executemany``.

Floor: the same 100,000 rows inserted with plain sqlite3 ``executemany`` in one transaction
into an equivalent table (same columns, same index, WAL, synchronous=NORMAL) on the same disk.
Shipyard: (a) ``run.log_batch`` with the 100,000 values, (b) 100,000 ``run.log_metric`` calls
followed by ``run.flush()`` (so every value is durable when the clock stops).
Each figure is the median of several repetitions, each on a fresh database.

Targets (issue #2): batch within 3x of the floor, per-call within 10x.
Run: ``make bench`` or ``.venv/bin/python benchmarks/tracking.py [--values N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.core.settings import load_settings
from shipyard.track.workspace import Workspace

RUN_ID = "0" * 32
TARGETS = {"tracking_batch": 3.0, "tracking_per_call": 10.0}


def make_values(count: int) -> list[tuple[str, float, int, int]]:
    keys = [f"metric_{k}" for k in range(10)]
    return [(keys[i % 10], i * 0.001, i // 10, 1_700_000_000_000 + i) for i in range(count)]


def floor(values: list[tuple[str, float, int, int]], directory: Path) -> float:
    connection = sqlite3.connect(directory / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(
        "CREATE TABLE metrics (metric_id INTEGER PRIMARY KEY, run_id VARCHAR(32), "
        "key VARCHAR(250), value FLOAT, step BIGINT, timestamp_ms BIGINT)"
    )
    connection.execute("CREATE INDEX ix_metrics_run_key_step ON metrics (run_id, key, step)")
    rows = [(RUN_ID, k, v, s, t) for k, v, s, t in values]
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO metrics (run_id, key, value, step, timestamp_ms) VALUES (?, ?, ?, ?, ?)", rows
    )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def _workspace(directory: Path) -> Workspace:
    return Workspace(
        load_settings(
            project_dir=directory,
            store_url=f"sqlite:///{directory / 'shipyard.db'}",
            artifact_root=str(directory / "artifacts"),
            tracking={"capture_git": False},
        )
    )


def batch(values: list[tuple[str, float, int, int]], directory: Path) -> float:
    with _workspace(directory) as workspace, workspace.start_run(name="bench-batch") as run:
        started = time.perf_counter()
        run.log_batch(values)
        return time.perf_counter() - started


def per_call(values: list[tuple[str, float, int, int]], directory: Path) -> float:
    with _workspace(directory) as workspace, workspace.start_run(name="bench-per-call") as run:
        log_metric = run.log_metric
        started = time.perf_counter()
        for key, value, step, timestamp_ms in values:
            log_metric(key, value, step, timestamp_ms)
        run.flush()
        elapsed = time.perf_counter() - started
        assert workspace.store.count_metrics([run.run_id]) == len(values)
        return elapsed


def median_seconds(work: Callable[[list, Path], float], values: list, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as directory:
            times.append(work(values, Path(directory)))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    values = make_values(args.values)
    floor_s = median_seconds(floor, values, args.repeat)
    results = {
        "tracking_batch": median_seconds(batch, values, args.repeat),
        "tracking_per_call": median_seconds(per_call, values, args.repeat),
    }
    n = args.values
    print(f"{n:,} metric values, median of {args.repeat}")
    print(f"  floor (sqlite3 executemany): {floor_s:8.3f} s  {n / floor_s:12,.0f} values/s")
    for name, seconds in results.items():
        print(
            f"  {name:28s} {seconds:8.3f} s  {n / seconds:12,.0f} values/s  "
            f"ratio {seconds / floor_s:.2f}"
        )
    for name, seconds in results.items():
        ratio = seconds / floor_s
        verdict = "ok" if ratio <= TARGETS[name] else "MISS"
        print(f"RESULT {name} ratio={ratio:.2f} target={TARGETS[name]:g} {verdict}")


if __name__ == "__main__":
    main()
