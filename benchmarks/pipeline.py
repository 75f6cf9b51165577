"""``shipyard run`` against hand-written lazy Polars doing the same work (issue 17).

The work, on the same generated CSV (12 columns, about 1% of rows failing a check): read the
CSV → 8 row checks → split valid / quarantined, each quarantined row with the names of the checks
it failed → write both to Parquet.

- **Floor**: a hand-written lazy Polars script: ``scan_csv`` with a schema, the timestamp
  parsed, the 8 checks as boolean expressions, one query that sinks the valid rows and the
  quarantined rows (with their reasons) to two Parquet files (``collect_all`` over a cached
  scan: the file is read and checked once).
- **Shipyard**: the real ``shipyard run`` command in its own process, on a data-only project
  (one CSV source, a contract with the same checks, policy quarantine; no steps, no training),
  each repetition in a copy of the same empty, already created workspace (a project that was
  set up, running on new data: a second run in one workspace would be served from cache, and
  a workspace created by the run itself would add its one-time schema migrations).

Both run as child processes (``harness.run_child``: CPU seconds and peak RSS of that process
and its threads, from ``wait4``), interleaved, ``--repeat`` times. The figure is CPU seconds,
not wall time: on a shared machine wall time measures the neighbours. After each Shipyard run
the counts of valid and quarantined rows are read from its workspace and must equal the
floor's: a floor that does less work is refused. Both sides are also run once on a 10-row file
and that CPU is printed: what a process costs before it reads a row (imports, the store).

Target: Shipyard's CPU seconds ≤ 1.5x the floor's (``pipeline_cpu``); peak RSS is reported.
With ``--big``, one more ``shipyard run`` on a ~3 GB, 18M-row CSV must peak under 1 GiB RSS
(``pipeline_memory``, issue 3).

Run: ``.venv/bin/python benchmarks/pipeline.py [--rows 2000000] [--repeat 3] [--big]``.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from harness import ChildUsage, Comparison, interleave, python_child, report, run_child

CPU_TARGET = 1.5
MEMORY_TARGET_BYTES = 1 << 30  # --big: peak RSS of ``shipyard run`` on a ~3 GB CSV (issue 3)
RSS_TARGET = 0.0  # peak RSS is reported, not judged (no target in issue 17 for this one)

TYPES = {
    "id": pl.Int64,
    "ts": pl.String,
    "cat": pl.String,
    "x1": pl.Float64,
    "x2": pl.Float64,
    "x3": pl.Float64,
    "x4": pl.Float64,
    "x5": pl.Float64,
    "x6": pl.Float64,
    "qty": pl.Int64,
    "email": pl.String,
    "flag": pl.String,
}

PROJECT = """
name: bench
sources:
  rows:
    uri: input.csv
    csv:
      columns: {id: int64, x1: float64, x2: float64, x3: float64, x4: float64, x5: float64,
                x6: float64, qty: int64, cat: string, email: string, flag: string}
    harmonize:
      cast:
        ts: {type: datetime, format: "%Y-%m-%dT%H:%M:%S"}
contract:
  policy: quarantine
  columns:
    id: {type: int64, nullable: false}
    ts: {type: datetime, nullable: false}
    cat: {type: string, allowed: [a, b, c, d]}
    x3: {type: float64, min: 0}
    x4: {type: float64, max: 1000}
    qty: {type: int64, min: 0}
    email: {type: string, regex: "^[^@]+@[^@]+$"}
    flag: {type: string, allowed: ["Y", "N"]}
"""

# The floor, run as ``python -c FLOOR csv out``: it prints the two row counts as JSON.
FLOOR = """
import json, sys
import polars as pl
csv, out = sys.argv[1], sys.argv[2]
schema = {
    "id": pl.Int64, "ts": pl.String, "cat": pl.String, "x1": pl.Float64, "x2": pl.Float64,
    "x3": pl.Float64, "x4": pl.Float64, "x5": pl.Float64, "x6": pl.Float64, "qty": pl.Int64,
    "email": pl.String, "flag": pl.String,
}
lf = pl.scan_csv(csv, schema=schema).with_columns(
    pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
)
checks = {
    "id.not_null": pl.col("id").is_null(),
    "ts.not_null": pl.col("ts").is_null(),
    "cat.allowed": ~pl.col("cat").is_in(["a", "b", "c", "d"]),
    "x3.min": pl.col("x3") < 0,
    "x4.max": pl.col("x4") > 1000,
    "qty.min": pl.col("qty") < 0,
    "email.regex": ~pl.col("email").str.contains("^[^@]+@[^@]+$"),
    "flag.allowed": ~pl.col("flag").is_in(["Y", "N"]),
}
flagged = lf.with_columns(
    pl.any_horizontal([e.fill_null(False) for e in checks.values()]).alias("_bad")
).cache()
reasons = pl.concat_list(
    [pl.when(e.fill_null(False)).then(pl.lit(n)) for n, e in checks.items()]
).list.drop_nulls()
valid = flagged.filter(~pl.col("_bad")).drop("_bad")
bad = flagged.filter(pl.col("_bad")).drop("_bad").with_columns(reasons.alias("_failed_checks"))
pl.collect_all(
    [
        valid.sink_parquet(f"{out}/valid.parquet", lazy=True),
        bad.sink_parquet(f"{out}/quarantined.parquet", lazy=True),
    ],
    engine="streaming",
)
count = lambda name: pl.scan_parquet(f"{out}/{name}.parquet").select(pl.len()).collect().item()
print(json.dumps({"valid": count("valid"), "quarantined": count("quarantined")}))
"""


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a CSV of ``rows`` rows in chunks (bounded memory), about 1% failing a check."""
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    span = 366 * 86_400
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = pl.Series("id", np.arange(start, start + n))
            x = rng.normal(50, 10, size=(6, n))
            x[2][rng.random(n) < 0.002] *= -1  # x3 < 0
            x[3][rng.random(n) < 0.002] *= 40  # x4 > 1000
            cats = np.array(["a", "b", "c", "d", "zz"])[
                np.minimum(rng.integers(0, 4, n) + (rng.random(n) < 0.003) * 4, 4)
            ]
            qty = rng.integers(0, 20, n) - (rng.random(n) < 0.003) * 50
            seconds = rng.integers(0, span, n)
            frame = pl.DataFrame(
                {
                    "id": ids,
                    "ts": pl.Series((seconds + 1_704_067_200) * 1_000_000).cast(pl.Datetime("us")),
                    "cat": cats,
                    **{f"x{i + 1}": x[i] for i in range(6)},
                    "qty": qty,
                    "email": ids,
                    "flag": np.where(rng.random(n) < 0.5, "Y", "N"),
                }
            ).with_columns(
                pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S"),
                pl.when(pl.col("email") % 331 == 0)
                .then(pl.format("user{}-at-example", pl.col("email")))
                .otherwise(pl.format("user{}@example.com", pl.col("email")))
                .alias("email"),
                pl.when(pl.Series(rng.random(n) < 0.01))
                .then(None)
                .otherwise(pl.col("x1"))
                .alias("x1"),
            )
            frame.write_csv(out, include_header=start == 0)


def empty_workspace(root: Path) -> Path:
    """Create an empty workspace under ``root`` (copied into each repetition's project)."""
    from shipyard.track.workspace import Workspace

    root.mkdir()
    Workspace.open(root).close()
    return root / ".shipyard"


def shipyard_counts(root: Path) -> dict[str, int]:
    """Valid and quarantined rows of the run in ``root``'s workspace (read after it ended)."""
    from shipyard.data.datasets import list_datasets
    from shipyard.track.workspace import Workspace

    with Workspace.open(root) as workspace:
        versions = list_datasets(workspace)
    by_name = {v.name: v.row_count for v in versions}
    return {
        "valid": by_name.get("bench.validated", 0),
        "quarantined": by_name.get("bench.quarantine", 0),
        "rejected": by_name.get("bench.rejected", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="also copy the generated CSV here")
    parser.add_argument(
        "--big", action="store_true", help="also the memory check: one run on a ~3 GB CSV"
    )
    parser.add_argument("--big-rows", type=int, default=18_000_000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shipyard = str(Path(sys.executable).with_name("shipyard"))
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        root = Path(tmp)
        csv = root / "input.csv"
        t = time.perf_counter()
        generate(csv, args.rows)
        print(
            f"generated {args.rows:,} rows x 12 columns, {csv.stat().st_size / 1e6:,.0f} MB in "
            f"{time.perf_counter() - t:.1f}s"
        )
        if args.keep:
            shutil.copy(csv, args.keep)
        cpu = Comparison("pipeline_cpu", CPU_TARGET, unit="cpu-s")
        rss = Comparison("pipeline_peak_rss", RSS_TARGET, unit="MiB")
        floor_runs: list[ChildUsage] = []
        ours_runs: list[ChildUsage] = []
        expected: dict[str, int] = {}
        got: list[dict[str, int]] = []

        def floor() -> float:
            out = root / "floor"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            usage = python_child(FLOOR, str(csv), str(out))
            counts = {k: int(v) for k, v in usage.json().items()}  # type: ignore[call-overload]
            if expected and counts != expected:
                raise SystemExit(f"the floor's counts changed between repetitions: {counts}")
            expected.update(counts)
            floor_runs.append(usage)
            return usage.cpu_s

        workspace = empty_workspace(root / "template")

        def run_shipyard(data: Path) -> ChildUsage:
            project = root / "project"
            shutil.rmtree(project, ignore_errors=True)
            shutil.copytree(workspace, project / ".shipyard")
            (project / "shipyard.yaml").write_text(PROJECT)
            (project / "input.csv").symlink_to(data)
            return run_child([shipyard, "-C", str(project), "run"])

        def ours() -> float:
            usage = run_shipyard(csv)
            got.append(shipyard_counts(root / "project"))
            ours_runs.append(usage)
            return usage.cpu_s

        interleave(floor, ours, cpu, args.repeat)
        tiny = root / "tiny.csv"
        with csv.open() as lines:
            tiny.write_text("".join(itertools.islice(lines, 11)))  # the header and 10 rows
        fixed_floor = python_child(FLOOR, str(tiny), str(root / "floor")).cpu_s
        fixed_ours = run_shipyard(tiny).cpu_s
        for f, o in zip(floor_runs, ours_runs, strict=True):
            rss.add(f.max_rss_bytes / 2**20, o.max_rss_bytes / 2**20)
        for counts in got:
            same = (counts["valid"], counts["quarantined"]) == (
                expected["valid"],
                expected["quarantined"],
            )
            if not same or counts["rejected"]:
                raise SystemExit(
                    f"outputs disagree: floor {expected}, shipyard {counts}; "
                    "the floor does not do the same work"
                )
        print(
            f"outputs agree: {expected['valid']:,} valid, {expected['quarantined']:,} "
            f"quarantined rows on both sides ({len(got)} repetitions)"
        )
        print(
            "wall seconds per repetition (floor / shipyard): "
            + ", ".join(
                f"{f.wall_s:.2f}/{o.wall_s:.2f}" for f, o in zip(floor_runs, ours_runs, strict=True)
            )
        )
        print(rss.describe())
        print(
            f"  CPU before the first row (10-row file): floor {fixed_floor:.2f} cpu-s, "
            f"shipyard {fixed_ours:.2f} cpu-s"
        )
        report(f"shipyard run vs lazy Polars, {args.rows:,} rows, CPU seconds", [cpu])
        if args.big:
            big_memory_check(csv, args.big_rows, run_shipyard)


def big_memory_check(csv: Path, rows: int, run: Callable[[Path], ChildUsage]) -> None:
    """Issue 3's memory target: ``shipyard run`` on a ~3 GB CSV stays under 1 GiB peak RSS."""
    csv.unlink()
    generate(csv, rows)
    print(f"generated {csv.stat().st_size / 1e9:.1f} GB ({rows:,} rows) for the memory check")
    usage = run(csv)
    peak = usage.max_rss_bytes
    print(f"  shipyard run: {usage.cpu_s:.1f} cpu-s, peak RSS {peak / 2**20:.0f} MiB")
    verdict = "ok" if peak <= MEMORY_TARGET_BYTES else "MISS"
    print(f"RESULT pipeline_memory ratio={peak / MEMORY_TARGET_BYTES:.3f} target=1 {verdict}")


if __name__ == "__main__":
    main()
