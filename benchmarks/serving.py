"""Serving speed: Shipyard's server vs. a bare uvicorn endpoint and the model's own predict.

Model: HistGradientBoosting on 20 numeric features (synthetic, 5,000 rows), trained, bundled,
registered and promoted through Shipyard in a temporary workspace. Three things are measured
in the same run, each server with one uvicorn worker, the load coming from a separate process
(closed loop, httpx.AsyncClient, keep-alive) for a fixed time per point:

- the HTTP floor: a FastAPI endpoint on uvicorn that parses the same JSON body and returns a
  constant (what any Python server pays before touching a model);
- the in-process floor: the model's own predict on a 1-row frame, no HTTP — the faster of the
  native pipeline (``bundle.predict``) and its verified ONNX export;
- ``shipyard serve`` with its prediction log on: contract checks, micro-batching, routing.

Targets (issue #5): at concurrency 32, Shipyard's throughput >= 60% of the HTTP floor's; p99
at concurrency 8 within 3x of (HTTP floor p99 + in-process 1-row predict time).
Run: ``.venv/bin/python benchmarks/serving.py [--duration 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

FEATURES = [f"f{i}" for i in range(20)]
TARGETS = {"serving_throughput_c32": 0.60, "serving_p99_c8": 3.0}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} never became ready")


def _load(url: str, body: bytes, concurrency: int, duration_s: float, queue: Any) -> None:
    """Closed-loop load for ``duration_s`` seconds; puts (ok, errors, latencies) on the queue."""
    import httpx

    async def main() -> tuple[int, int, list[float]]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            stop = time.perf_counter() + duration_s

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    try:
                        response = await client.post(url, content=body, headers=headers)
                        ok = response.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(latencies), errors, latencies

    queue.put(asyncio.run(main()))


def measure(url: str, body: bytes, concurrency: int, duration_s: float) -> dict[str, float]:
    """Throughput and latency percentiles of one load point, generated in another process."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_load, args=(url, body, concurrency, duration_s, queue))
    process.start()
    ok, errors, latencies = queue.get(timeout=duration_s + 120)
    process.join()
    ms = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "rps": ok / duration_s,
        "errors": float(errors),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


FLOOR_APP = textwrap.dedent(
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    import orjson

    app = FastAPI()

    @app.post("/models/m/predict")
    async def predict(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(b'{"predictions": [0]}', media_type="application/json")
    """
)


def start(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_ready(ready)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def build_model(directory: Path) -> Any:
    """Train, register and promote the benchmark model; return its bundle."""
    from sklearn.datasets import make_classification

    from shipyard.registry.packaging import write_training_bundle
    from shipyard.registry.registry import ModelRegistry
    from shipyard.track.workspace import Workspace
    from shipyard.train.spec import EstimatorSpec, TrainSpec
    from shipyard.train.trainer import train

    x, y = make_classification(n_samples=5000, n_features=20, n_informative=8, random_state=0)
    frame = pl.DataFrame({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "target": y})
    spec = TrainSpec(
        target="target",
        estimators=[EstimatorSpec(name="hist_gradient_boosting")],
        tuning={"trials": 1},
        cv={"folds": 2},
        bootstrap_resamples=10,
        explain=False,
    )
    result = train(spec, frame)
    path = directory / "m.shipyard"
    write_training_bundle(
        result, path, name="m", created_at=dt.datetime.now(dt.UTC), run_id=None,
        dataset_ids={}, code_version=None,
    )  # fmt: skip
    with Workspace.open(directory) as workspace:
        registry = ModelRegistry(workspace)
        version = registry.register("m", path)
        registry.promote("m", version.version, force=True, reason="benchmark")
        return registry.load("m@production")


def in_process_ms(predict: Any, rows: pl.DataFrame, repeat: int = 200) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        predict(rows)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load point")
    args = parser.parse_args()
    shipyard_bin = str(Path(sys.executable).with_name("shipyard"))
    rng = np.random.default_rng(1)
    one = {f: float(v) for f, v in zip(FEATURES, rng.normal(size=20), strict=True)}
    hundred = [
        {f: float(v) for f, v in zip(FEATURES, row, strict=True)}
        for row in rng.normal(size=(100, 20))
    ]
    body1, body100 = json.dumps([one]).encode(), json.dumps(hundred).encode()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        bundle = build_model(directory)
        from shipyard.serve.fast_path import OnnxPredictor

        native1 = in_process_ms(bundle.predict, pl.DataFrame([one]))
        native100 = in_process_ms(bundle.predict, pl.DataFrame(hundred), repeat=50)
        onnx, _ = OnnxPredictor.try_build(bundle)
        assert onnx is not None, "the benchmark model should export to ONNX"
        onnx1 = in_process_ms(onnx, pl.DataFrame([one]))
        # The stricter floor: the faster of the two ways the model can predict in process.
        predict1 = min(native1, onnx1)
        print(
            f"in-process predict: native 1 row {native1:.3f} ms, 100 rows {native100:.3f} ms; "
            f"verified ONNX 1 row {onnx1:.3f} ms"
        )
        (directory / "floor_app.py").write_text(FLOOR_APP)
        (directory / "shipyard.yaml").write_text("name: bench\n")
        env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(directory), "PYTHONPATH": str(directory)}
        results: dict[str, dict[str, float]] = {}
        port = _port()
        uvicorn_args = ["-m", "uvicorn", "floor_app:app", "--log-level", "warning"]
        floor = start(
            [sys.executable, *uvicorn_args, "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/docs",
        )
        try:
            url = f"http://127.0.0.1:{port}/models/m/predict"
            for c in (1, 8, 32):
                results[f"floor c={c}"] = measure(url, body1, c, args.duration)
        finally:
            stop(floor)
        port = _port()
        server = start(
            [shipyard_bin, "serve", "m@production", "--port", str(port), "--workers", "1"],
            env, f"http://127.0.0.1:{port}/v2/health/ready",
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/models/m/predict"
            for c in (1, 8, 32):
                results[f"shipyard c={c}"] = measure(url, body1, c, args.duration)
            results["shipyard 100-row c=8"] = measure(url, body100, 8, args.duration)
        finally:
            stop(server)
        # Cost metering off (docs/cost.md): the same server without the per-batch CPU clock.
        port = _port()
        server = start(
            [shipyard_bin, "serve", "m@production", "--port", str(port), "--workers", "1"],
            {**env, "SHIPYARD_COST__METERING": "0"}, f"http://127.0.0.1:{port}/v2/health/ready",
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/models/m/predict"
            results["metering off c=8"] = measure(url, body1, 8, args.duration)
        finally:
            stop(server)
    print(f"{'point':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, r in results.items():
        print(
            f"{name:<24}{r['rps']:>10.0f}{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f}{r['errors']:>8.0f}"
        )
    throughput = results["shipyard c=32"]["rps"] / results["floor c=32"]["rps"]
    budget = results["floor c=8"]["p99_ms"] + predict1
    p99_ratio = results["shipyard c=8"]["p99_ms"] / budget
    print(f"c=32 throughput: {throughput:.2f} of the HTTP floor (target >= 0.60)")
    p99 = results["shipyard c=8"]["p99_ms"]
    print(f"c=8 p99: {p99:.2f} ms vs floor p99 + predict {budget:.2f} ms")
    ok1 = "ok" if throughput >= TARGETS["serving_throughput_c32"] else "MISS"
    ok2 = "ok" if p99_ratio <= TARGETS["serving_p99_c8"] else "MISS"
    t1, t2 = TARGETS["serving_throughput_c32"], TARGETS["serving_p99_c8"]
    print(f"RESULT serving_throughput_c32 ratio={throughput:.3f} target={t1} {ok1}")
    print(f"RESULT serving_p99_c8 ratio={p99_ratio:.3f} target={t2} {ok2}")
    # Throughput without metering over throughput with it: 1.00 means metering is free.
    metering = results["metering off c=8"]["rps"] / results["shipyard c=8"]["rps"]
    ok3 = "ok" if metering <= 1.03 else "MISS"
    print(f"RESULT serving_metering_overhead ratio={metering:.3f} target=1.03 {ok3}")


if __name__ == "__main__":
    main()
