"""What the ``ray`` executor costs per tuning trial and per scoring partition over ``local``.

Both sides do the same work: the same seeded random search of a small model (logistic
regression on a churn-like frame, 3 CV folds), and the same batch scoring of a CSV file in
fixed chunks. The floor is the ``local`` executor (everything in this process); Shipyard's
side is the ``ray`` executor on a Ray started for this benchmark (``ray.init`` on this
machine, workers warmed up first), with ``in_flight: 1`` so trials and partitions run one at
a time there too: the difference divided by the trial (partition) count is the overhead of
running one item as a Ray task (submit, object-store transfer of its inputs and result,
scheduling, fetch), not a parallel speed-up. Wall time, because that is what the overhead
adds to a search; the sides alternate (``harness.py``).

Target (issue 21): at most 20 ms of overhead per trial. The RESULT lines' ``ratio`` is the
median overhead over that 20 ms budget (<= 1 is ok); per partition the same budget is used.
Run: ``.venv/bin/python benchmarks/ray_overhead.py [--trials 30] [--partitions 30] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
from harness import MIN_REPEAT

from shipyard.core.executor import Executor, LocalExecutor, executor_for
from shipyard.core.settings import ExecutorSettings, RegistrySettings
from shipyard.registry.bundle import read_bundle
from shipyard.registry.packaging import write_training_bundle
from shipyard.serve.batch import score_file
from shipyard.serve.batch_partitions import score_file_on
from shipyard.train.spec import EstimatorSpec, TrainSpec
from shipyard.train.trainer import train

BUDGET_MS = 20.0
CHUNK_ROWS = 500


def churn(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], n)
    tenure = rng.integers(1, 60, n).astype(float)
    charges = rng.normal(50, 15, n)
    logit = -0.05 * tenure + 0.03 * (charges - 50) + np.where(plan == "basic", 0.8, -0.4)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame({"tenure": tenure, "charges": charges, "plan": plan, "churned": churned})


def spec(trials: int) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "target": "churned",
            "estimators": [
                EstimatorSpec(
                    name="logistic", space={"C": {"low": 0.01, "high": 10.0, "log": True}}
                )
            ],
            "tuning": {"trials": trials, "sampler": "random", "pruning": False},
            "cv": {"folds": 3},
            "bootstrap_resamples": 0,
            "explain": False,
            "plots": False,
        }
    )


def timed_train(frame: pl.DataFrame, trials: int, executor: Executor) -> float:
    started = time.perf_counter()
    result = train(spec(trials), frame, executor=executor)
    assert len(result.tuning.trials) == trials
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--partitions", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("ray").setLevel(logging.ERROR)
    frame = churn(600)
    local: Executor = LocalExecutor()
    remote = executor_for(ExecutorSettings(kind="ray", in_flight=1, max_retries=0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fitted = train(spec(1), frame)
        path = root / "model.shipyard"
        sha = write_training_bundle(
            fitted, path, name="churn", created_at=dt.datetime.now(dt.UTC), run_id=None,
            dataset_ids={}, code_version=None,
        )  # fmt: skip
        bundle, data = read_bundle(path, expected_sha256=sha), path.read_bytes()
        source = root / "in.csv"
        churn(CHUNK_ROWS * args.partitions, seed=1).drop("churned").write_csv(source)

        def score_local() -> float:
            started = time.perf_counter()
            report = score_file(bundle, source, root / "local.parquet", chunk_rows=CHUNK_ROWS)
            assert report.chunks == args.partitions
            return time.perf_counter() - started

        def score_remote() -> float:
            started = time.perf_counter()
            report = score_file_on(
                remote,
                data,
                sha,
                source,
                root / "ray.parquet",
                limits=RegistrySettings(),
                chunk_rows=CHUNK_ROWS,
            )
            assert report.chunks == args.partitions
            return time.perf_counter() - started

        timed_train(frame, 2, remote)  # warm: workers import the ML stack once
        score_remote()
        trial_ms: list[float] = []
        part_ms: list[float] = []
        floors = {"trial": [], "partition": []}  # type: dict[str, list[float]]
        for i in range(max(args.repeat, MIN_REPEAT)):
            order = [local, remote] if i % 2 == 0 else [remote, local]
            took = {e.name: timed_train(frame, args.trials, e) for e in order}
            trial_ms.append((took["ray"] - took["local"]) / args.trials * 1e3)
            floors["trial"].append(took["local"] / args.trials * 1e3)
            scorers = [("local", score_local), ("ray", score_remote)]
            took = {name: fn() for name, fn in (scorers if i % 2 == 0 else scorers[::-1])}
            part_ms.append((took["ray"] - took["local"]) / args.partitions * 1e3)
            floors["partition"].append(took["local"] / args.partitions * 1e3)
    print("ray executor overhead over local (wall, in_flight 1; machine shared, so noisy)")
    ok = True
    for name, values in (("trial", trial_ms), ("partition", part_ms)):
        median = statistics.median(values)
        print(
            f"  per {name:9s}: local {statistics.median(floors[name]):7.2f} ms, "
            f"ray overhead {median:+7.2f} ms (min {min(values):+.2f}, max {max(values):+.2f}, "
            f"n={len(values)})"
        )
    for name, values in (("trial", trial_ms), ("partition", part_ms)):
        ratio = max(statistics.median(values), 0.0) / BUDGET_MS
        verdict = "ok" if ratio <= 1.0 else "MISS"
        # Ray does the local work plus its own: faster than local by over 5% in most
        # repetitions means the two sides did not do the same work.
        faster = sum(-v > 0.05 * f for v, f in zip(values, floors[name], strict=True))
        if faster > len(values) // 2:
            print(f"  per {name}: MISS: ray beat the local floor by over 5% in {faster} reps")
            verdict = "MISS"
        ok = ok and verdict == "ok"
        print(f"RESULT ray_overhead_per_{name} ratio={ratio:.3f} target=1 {verdict}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
