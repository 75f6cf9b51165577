"""Data pipeline speed and memory: Shipyard vs. a hand-written Polars script (the floor).

Both do the same work on the same generated CSV (12 columns, ~1% bad rows):
read → 8 row checks → split valid / quarantined (with the failed checks per row) →
clean (median imputation, IQR clipping, dedup by key keeping the latest) → Parquet.

- Floor: ``pl.scan_csv`` with a schema and one pass of boolean expressions, collected once
  into memory, then eager cleaning and ``write_parquet`` (fast, but memory grows with input).
- Shipyard: ``CsvConnector`` (pyarrow streaming reader that keeps malformed lines) →
  ``harmonize`` (types) → ``validate`` (contract, quarantine with reasons) → ``clean`` → Parquet.

Each variant runs in its own process so its peak RSS is its own (``ru_maxrss`` of the child).
Target (issue #3): Shipyard's time ≤ 1.5x the floor's. With ``--big``, a ~3 GB CSV is generated
(then deleted) and Shipyard's peak RSS must stay under 1 GiB.

Run: ``.venv/bin/python benchmarks/pipeline.py [--rows 10000000] [--big]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

TIME_TARGET = 1.5
MEMORY_TARGET_BYTES = 1 << 30
COLUMNS = ["id", "ts", "cat", "x1", "x2", "x3", "x4", "x5", "x6", "qty", "email", "flag"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write a CSV of ``rows`` rows in chunks (bounded memory), ~1% of them bad."""
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            ids = np.arange(start, start + n)
            ids[rng.random(n) < 0.001] -= 1  # a few duplicate keys
            x = rng.normal(50, 10, size=(6, n))
            x[1][rng.random(n) < 0.002] *= 40  # outliers to clip
            cats = np.array(["a", "b", "c", "d", "zz"])[
                np.minimum(rng.integers(0, 4, n) + (rng.random(n) < 0.003) * 4, 4)
            ]
            qty = rng.integers(0, 20, n) - (rng.random(n) < 0.003) * 50
            frame = pl.DataFrame(
                {
                    "id": ids,
                    "ts": pl.datetime_range(
                        pl.datetime(2024, 1, 1),
                        pl.datetime(2024, 12, 31),
                        interval="1s",
                        eager=True,
                    )
                    .sample(n, with_replacement=True, seed=int(start))
                    .dt.strftime("%Y-%m-%dT%H:%M:%S"),
                    "cat": cats,
                    **{f"x{i + 1}": x[i] for i in range(6)},
                    "qty": qty,
                    "email": [
                        f"user{i}@example.com" if i % 331 else f"user{i}-at-example" for i in ids
                    ],
                    "flag": np.where(rng.random(n) < 0.5, "Y", "N"),
                }
            ).with_columns(
                pl.when(pl.Series(rng.random(n) < 0.01))
                .then(None)
                .otherwise(pl.col("x1"))
                .alias("x1")
            )
            frame.write_csv(out, include_header=start == 0)


SCHEMA = {
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


def floor(csv: Path, out: Path) -> int:
    """The hand-written Polars version of the same work."""
    lf = pl.scan_csv(csv, schema=SCHEMA).with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
    )
    checks = {
        "id.not_null": pl.col("id").is_null(),
        "ts.not_null": pl.col("ts").is_null(),
        "cat.allowed": ~pl.col("cat").is_in(["a", "b", "c", "d"]),
        "x3.min": pl.col("x3") < 0,
        "x4.max": pl.col("x4") > 1000,
        "qty.min": pl.col("qty") < 0,
        "email.regex": ~pl.col("email").str.contains(r"^[^@]+@[^@]+$"),
        "flag.allowed": ~pl.col("flag").is_in(["Y", "N"]),
    }
    failed = pl.concat_list(
        [pl.when(e.fill_null(False)).then(pl.lit(n)) for n, e in checks.items()]
    )
    # Read once into memory (the fastest hand-written shape for data that fits), then work eagerly.
    flagged = lf.with_columns(failed.list.drop_nulls().alias("_failed_checks")).collect()
    bad = flagged.filter(pl.col("_failed_checks").list.len() > 0)
    good = flagged.filter(pl.col("_failed_checks").list.len() == 0).drop("_failed_checks")
    median = float(good["x1"].median())  # type: ignore[arg-type]
    q1 = float(good["x2"].quantile(0.25))  # type: ignore[arg-type]
    q3 = float(good["x2"].quantile(0.75))  # type: ignore[arg-type]
    iqr = q3 - q1
    latest = pl.col("_i").sort_by(["ts", "_i"]).last().over("id")  # the newest row per id
    cleaned = (
        good.with_row_index("_i")
        .filter(pl.col("_i") == latest)
        .drop("_i")
        .with_columns(
            pl.col("x1").fill_null(median),
            pl.col("x2").clip(q1 - 1.5 * iqr, q3 + 1.5 * iqr),
        )
    )
    cleaned.write_parquet(out / "floor.parquet")
    bad.write_parquet(out / "floor_quarantine.parquet")
    return int(pl.scan_parquet(out / "floor.parquet").select(pl.len()).collect().item())


def shipyard(csv: Path, out: Path) -> int:
    """The same work through Shipyard's data package."""
    from shipyard.data.clean import CleanSpec, clean
    from shipyard.data.connectors.base import SourceSpec, open_connector
    from shipyard.data.contract import Contract
    from shipyard.data.harmonize import HarmonizeSpec, harmonize
    from shipyard.data.validate import validate_to_parquet

    types = {
        "id": "int64",
        "x1": "float64",
        "x2": "float64",
        "x3": "float64",
        "x4": "float64",
        "x5": "float64",
        "x6": "float64",
        "qty": "int64",
        "ts": {"type": "datetime", "format": "%Y-%m-%dT%H:%M:%S"},
    }
    # The cast columns are harmonize's to parse (the connector infers only the others).
    spec = SourceSpec(name="bench", uri=str(csv), harmonize={"cast": types})
    contract = Contract.model_validate(
        {
            "policy": "quarantine",
            "columns": {
                "id": {"type": "int64", "nullable": False},
                "ts": {"type": "datetime", "nullable": False},
                "cat": {"type": "string", "allowed": ["a", "b", "c", "d"]},
                "x3": {"type": "float64", "min": 0},
                "x4": {"type": "float64", "max": 1000},
                "qty": {"type": "int64", "min": 0},
                "email": {"type": "string", "regex": "^[^@]+@[^@]+$"},
                "flag": {"type": "string", "allowed": ["Y", "N"]},
            },
        }
    )
    cleaning = CleanSpec.model_validate(
        {
            "dedup": {"key": ["id"], "keep_latest_by": "ts"},
            "impute": {"x1": "median"},
            "outliers": {"x2": {"method": "iqr", "k": 1.5, "action": "clip"}},
        }
    )
    with open_connector(spec, base_dir=csv.parent) as connector:
        typed = harmonize(
            connector.scan(),
            HarmonizeSpec.model_validate({"cast": types}),
            source="bench",
            count=False,
        ).frame
        validate_to_parquet(typed, contract, out / "valid.parquet", out / "quarantine.parquet")
    result = clean(pl.scan_parquet(out / "valid.parquet"), cleaning)
    result.frame.sink_parquet(out / "shipyard.parquet")
    return result.report.rows_out


def child(variant: str, csv: Path, out: Path) -> None:
    started = time.perf_counter()
    rows = (floor if variant == "floor" else shipyard)(csv, out)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_bytes": peak}))


def measure(variant: str, csv: Path, out: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(csv), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--big", action="store_true", help="also the ~3 GB memory check")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-") as tmp:
        root = Path(tmp)
        csv = root / "input.csv"
        t = time.perf_counter()
        generate(csv, args.rows)
        size_mb = csv.stat().st_size / 1e6
        print(
            f"generated {args.rows:,} rows x 12 columns, {size_mb:,.0f} MB in "
            f"{time.perf_counter() - t:.1f}s"
        )
        base = measure("floor", csv, root)
        ours = measure("shipyard", csv, root)
        for name, r in (("floor (polars script)", base), ("shipyard", ours)):
            print(
                f"  {name:22s} {r['seconds']:7.2f} s  {args.rows / r['seconds']:12,.0f} rows/s  "
                f"peak RSS {r['peak_rss_bytes'] / 2**20:7.0f} MiB  rows out {r['rows']:,}"
            )
        ratio = ours["seconds"] / base["seconds"]
        print(
            f"RESULT pipeline_time ratio={ratio:.2f} target={TIME_TARGET} "
            f"{'ok' if ratio <= TIME_TARGET else 'MISS'}"
        )
        if args.big:
            csv.unlink()
            big_rows = max(args.rows, 18_000_000)  # ~3 GB of CSV
            generate(csv, big_rows)
            print(f"generated {csv.stat().st_size / 1e9:.1f} GB for the memory check")
            big = measure("shipyard", csv, root)
            csv.unlink()
            peak = big["peak_rss_bytes"]
            print(
                f"  shipyard on {big_rows:,} rows: {big['seconds']:.1f} s, peak RSS "
                f"{peak / 2**20:.0f} MiB"
            )
            print(
                f"RESULT pipeline_memory ratio={peak / MEMORY_TARGET_BYTES:.2f} target=1 "
                f"{'ok' if peak <= MEMORY_TARGET_BYTES else 'MISS'}"
            )


if __name__ == "__main__":
    main()
