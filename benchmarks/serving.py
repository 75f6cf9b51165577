"""Serving speed: Shipyard's server against a bare ASGI app on the same uvicorn stack.

Model: HistGradientBoosting on 20 numeric features (synthetic, 5,000 rows), trained, bundled,
registered and promoted through Shipyard in a temporary workspace.

**HTTP, measured from outside** (issue #17). Every server is one uvicorn worker with uvloop and
httptools, pinned to CPU 0 (``taskset -c 0``); the load is wrk (a compiled generator, Debian's
``wrk`` package, installed when missing) pinned to CPU 1, posting the same one-row JSON body
through a Lua script, keep-alive, for a fixed time per point. The floor is a bare Starlette
app on that same stack which reads the body, parses it with orjson and answers a constant:
what any Python server pays before touching a model. Floor and Shipyard stay up for the whole
run and are loaded in turn, order swapped every repetition; every figure is a ratio per
repetition, reported as median and spread (``harness.py``).

- ``serving_c32_throughput``: Shipyard's req/s at 32 connections over the floor's (>= 0.6).
Beside them it prints each server's own CPU time per request at c=32 (from the OS) and the
floor's over Shipyard's: on a shared machine, where req/s swings with the neighbours, that is
the throughput ratio a quiet, saturated core would give (informational, not a RESULT).

- ``serving_p99_c8``: Shipyard's p99 at 8 connections over (the floor's p99 + the model's own
  in-process one-row predict time, the faster of native and verified ONNX) (<= 3).

Shipyard runs as users run it: ``shipyard serve`` with bearer-token auth (a viewer service
account's token; the floor has no auth, so auth is part of Shipyard's overhead), the prediction
log on, metering on.

**Native fallback, in process** (no HTTP): a model whose ONNX export is refused is served by
its scikit-learn pipeline. ``serving_native_per_row`` is the time per row of the server's
native path (the one-row JSON columns decoded against the contract, the estimator called,
the answer split back) over calling the estimator directly on a prepared pandas frame of the
same row, one float64 block (<= 1.2), both with the native thread pools held to one thread
(the faster setting for a few rows; see ``serve/native_path.py``).

**Metering** (docs/cost.md): two servers (metering on and ``SHIPYARD_COST__METERING=0``) both
on CPU 0, loaded at the same time by two wrk processes (c=8 each) so whatever else the box
does hits both alike; each round gives each server's own CPU time per request (from the OS).
``serving_metering_overhead`` is the median over rounds of on/off (<= 1.03).

Run: ``.venv/bin/python benchmarks/serving.py [--duration 5] [--repeat 5]`` or ``--quick``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
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

import harness
import numpy as np
import polars as pl

FEATURES = [f"f{i}" for i in range(20)]
SERVER_CPU, LOAD_CPU = "0", "1"

FLOOR_APP = textwrap.dedent(
    """
    import orjson
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def predict(request):
        orjson.loads(await request.body())
        return Response(b'{"predictions": [0]}', media_type="application/json")

    async def ready(request):
        return Response(b'{"ready": true}', media_type="application/json")

    app = Starlette(routes=[
        Route("/models/m/predict", predict, methods=["POST"]),
        Route("/v2/health/ready", ready),
    ])
    """
)

# wrk's Lua hooks: POST the body with the headers, then print one JSON line of figures.
WRK_SCRIPT = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.body = io.open(os.getenv("BENCH_BODY")):read("*a")
    wrk.headers["Content-Type"] = "application/json"
    local token = os.getenv("BENCH_TOKEN")
    if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
    done = function(summary, latency, requests)
      local e = summary.errors
      io.write(string.format(
        '{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\\n',
        summary.requests, summary.duration,
        e.connect + e.read + e.write + e.status + e.timeout,
        latency:percentile(50), latency:percentile(99)))
    end
    """
)


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian's packages when missing."""
    found = shutil.which("wrk")
    if found is None:
        print("wrk is missing: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if found is None or shutil.which("taskset") is None:
        raise SystemExit("this benchmark needs wrk and taskset (apt-get install -y wrk util-linux)")
    return found


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Load:
    """wrk runs pinned to the load CPU, one POST body and (optionally) a bearer token."""

    def __init__(self, directory: Path, body: bytes) -> None:
        self.wrk = ensure_wrk()
        self.script = directory / "post.lua"
        self.script.write_text(WRK_SCRIPT)
        self.body = directory / "body.json"
        self.body.write_bytes(body)

    def start(
        self, url: str, connections: int, duration_s: float, token: str | None
    ) -> subprocess.Popen[str]:
        """Start one wrk run (returns at once; ``finish`` reads its figures)."""
        env = {**os.environ, "BENCH_BODY": str(self.body), "BENCH_TOKEN": token or ""}
        command = [
            "taskset", "-c", LOAD_CPU, self.wrk, "-t1", f"-c{connections}",
            f"-d{max(1, round(duration_s))}s", "--timeout", "30s", "-s", str(self.script), url,
        ]  # fmt: skip
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)

    @staticmethod
    def finish(process: subprocess.Popen[str]) -> dict[str, float]:
        """Wait for a wrk run; req/s, p50 and p99 in ms, request and error counts.

        Raises:
            RuntimeError: wrk failed, or a request failed (a server that errors is not fast).
        """
        out, _ = process.communicate(timeout=600)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"wrk failed ({process.returncode}):\n{out[-2000:]}")
        figures = json.loads(lines[-1])
        if figures["errors"]:
            raise RuntimeError(f"{figures['errors']} requests failed under load: {figures}")
        seconds = figures["duration_us"] / 1e6
        return {
            "rps": figures["requests"] / seconds,
            "requests": float(figures["requests"]),
            "p50_ms": figures["p50_us"] / 1000,
            "p99_ms": figures["p99_us"] / 1000,
        }

    def measure(
        self, url: str, connections: int, duration_s: float, token: str | None
    ) -> dict[str, float]:
        """One load point."""
        return self.finish(self.start(url, connections, duration_s, token))


def start_server(args: list[str], env: dict[str, str], ready: str) -> subprocess.Popen[bytes]:
    """Start a server pinned to the server CPU; wait until ``ready`` answers 200."""
    import httpx  # readiness only; the load comes from wrk

    with tempfile.TemporaryFile() as errors:  # the child keeps its own descriptor
        process = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *args], env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
        deadline = time.monotonic() + 180  # a busy 2-core box can take a while to import
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        stop(process)
        errors.seek(0)
        tail = errors.read().decode(errors="replace")[-3000:]
    raise SystemExit(f"{' '.join(args)} never became ready ({ready}):\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def register_model(directory: Path, features: list[str], rows: int, informative: int) -> None:
    """Train a small HistGradientBoosting model, register it as ``m`` and promote it."""
    from sklearn.datasets import make_classification

    from shipyard.registry.packaging import write_training_bundle
    from shipyard.registry.registry import ModelRegistry
    from shipyard.security.identities import local_identity
    from shipyard.track.workspace import Workspace
    from shipyard.train.spec import EstimatorSpec, TrainSpec
    from shipyard.train.trainer import train

    x, y = make_classification(
        n_samples=rows, n_features=len(features), n_informative=informative, random_state=0
    )
    frame = pl.DataFrame({**{f: x[:, i] for i, f in enumerate(features)}, "target": y})
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
        registry = ModelRegistry.for_workspace(workspace)
        me = local_identity("project", source="benchmark")
        version = registry.register("m", path, actor=me)
        registry.promote("m", version.version, force=True, reason="benchmark", actor=me)


def build_model(directory: Path) -> Any:
    """Train, register and promote the benchmark model; return its bundle."""
    from shipyard.registry.registry import ModelRegistry
    from shipyard.track.workspace import Workspace

    register_model(directory, FEATURES, rows=5000, informative=8)
    with Workspace.open(directory) as workspace:
        return ModelRegistry.for_workspace(workspace).load("m@production")


def create_token(directory: Path, project: str) -> str:
    """A token of a viewer service account (may predict) for the benchmark's own server."""
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.security.identities import local_identity
    from shipyard.track.workspace import Workspace

    with Workspace.open(directory) as workspace:
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        me = local_identity(project, source="benchmark")
        accounts.ensure_user(me, "serving-benchmark", service=True)
        accounts.grant(me, "serving-benchmark", "viewer", project)
        return accounts.create_token(me, "serving-benchmark", expires_in_days=1).text


def check_auth(url: str, body: bytes, token: str) -> None:
    """Fail fast unless the server refuses no token and answers the benchmark's token."""
    import httpx

    plain = {"content-type": "application/json"}
    refused = httpx.post(url, content=body, headers=plain, timeout=30).status_code
    answered = httpx.post(
        url, content=body, headers={**plain, "authorization": f"Bearer {token}"}, timeout=30
    )
    if refused != 401 or answered.status_code != 200:
        raise SystemExit(
            f"{url}: without a token {refused} (expected 401), with the benchmark's token "
            f"{answered.status_code} (expected 200): {answered.text[:200]}"
        )


def serve_shipyard(
    directory: Path, env: dict[str, str], *, log: str
) -> tuple[subprocess.Popen[bytes], str]:
    """``shipyard serve m@production`` with one worker; returns the process and predict URL."""
    port = _port()
    shipyard_bin = str(Path(sys.executable).with_name("shipyard"))
    process = start_server(
        [shipyard_bin, "serve", "m@production", "--port", str(port), "--workers", "1",
         "--log-dir", str(directory / log)],
        env, f"http://127.0.0.1:{port}/v2/health/ready",
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}/models/m/predict"


def serve_floor(directory: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """The bare Starlette floor on uvicorn + uvloop + httptools; returns it and its URL."""
    (directory / "floor_app.py").write_text(FLOOR_APP)
    port = _port()
    process = start_server(
        [sys.executable, "-m", "uvicorn", "floor_app:app", "--loop", "uvloop", "--http",
         "httptools", "--log-level", "warning", "--no-access-log", "--port", str(port)],
        env, f"http://127.0.0.1:{port}/v2/health/ready",
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}/models/m/predict"


def best_ms(call: Any, repeat: int) -> float:
    """Median milliseconds of ``call()`` over ``repeat`` runs (after one warm-up)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def native_comparison(bundle: Any, row: dict[str, float], repeat: int, reps: int) -> Any:
    """In process: the server's native path per row vs the estimator on a prepared frame."""
    import orjson
    import pandas as pd

    from shipyard.serve.host import ServedModel
    from shipyard.serve.routes.inference import decode_plain

    served = ServedModel.build(
        "m", 1, bundle, unseen=None, max_batch_rows=256, fast_path=False, metering=True
    )
    body = json.dumps([row]).encode()
    names = bundle.manifest.feature_names
    # The estimator's best case: a float64 frame in one block, as the server builds it.
    frame = pd.DataFrame(np.array([[row[n] for n in names]], dtype=np.float64), columns=names)
    model = bundle.model

    def ours() -> None:  # what the server does per request, minus HTTP and batching
        inputs, _ = decode_plain(served.contract, orjson.loads(body))
        served.score_now(inputs)

    from threadpoolctl import ThreadpoolController

    pools = ThreadpoolController()

    def floor() -> None:  # one thread, as the server runs it: the faster way for one row
        with pools.limit(limits=1):
            model.predict_proba(frame)

    comparison = harness.Comparison("serving_native_per_row", 1.2, unit="ms")
    return harness.interleave(
        lambda: best_ms(floor, repeat), lambda: best_ms(ours, repeat), comparison, reps
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from the OS)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def metering_ratios(
    load: Load, servers: dict[str, tuple[int, str]], token: str, rounds: int, duration_s: float
) -> list[float]:
    """Per round: CPU per request with metering on over off, both loaded at once (c=8 each)."""
    ratios = []
    for i in range(rounds):
        sides = list(servers) if i % 2 == 0 else list(servers)[::-1]  # who starts first
        before = {side: cpu_seconds(servers[side][0]) for side in sides}
        running = {side: load.start(servers[side][1], 8, duration_s, token) for side in sides}
        points = {side: load.finish(process) for side, process in running.items()}
        per_request = {
            side: (cpu_seconds(servers[side][0]) - before[side]) / points[side]["requests"]
            for side in servers
        }
        ratios.append(per_request["on"] / per_request["off"])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load point")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--rounds", type=int, default=10, help="metering on/off rounds")
    parser.add_argument("--quick", action="store_true", help="2 s points, 3 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeat, args.rounds = 2.0, 3, 4
    rng = np.random.default_rng(1)
    one = {f: float(v) for f, v in zip(FEATURES, rng.normal(size=20), strict=True)}
    body = json.dumps([one]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        bundle = build_model(directory)
        from shipyard.serve.fast_path import OnnxPredictor

        native1 = best_ms(lambda: bundle.predict(pl.DataFrame([one])), 50)
        onnx, _ = OnnxPredictor.try_build(bundle)
        assert onnx is not None, "the benchmark model should export to ONNX"
        decoded = bundle.contract.decode_frame(pl.DataFrame([one]))
        onnx1 = best_ms(lambda: onnx(decoded), 200)
        predict1 = min(native1, onnx1)  # the stricter floor: the faster way to predict
        print(f"in-process 1-row predict: native {native1:.3f} ms, ONNX {onnx1:.3f} ms", flush=True)
        native = native_comparison(bundle, one, repeat=100 if args.quick else 300, reps=args.repeat)

        (directory / "shipyard.yaml").write_text("name: bench\n")
        token = create_token(directory, "bench")
        env = {**os.environ, "SHIPYARD_PROJECT_DIR": str(directory), "PYTHONPATH": str(directory)}
        env.pop("SHIPYARD_COST__METERING", None)  # on unless a side turns it off
        load = Load(directory, body)
        throughput = harness.Comparison("serving_c32_throughput", 0.6, unit="req/s", higher=True)
        p99 = harness.Comparison("serving_p99_c8", 3.0, unit="ms")
        floor, floor_url = serve_floor(directory, env)
        server, url = serve_shipyard(directory, env, log="predictions")
        try:
            check_auth(url, body, token)
            for target, secret in ((floor_url, None), (url, token)):  # warm both
                load.measure(target, 32, 1.0, secret)
            # Server CPU per request at c=32 (from the OS): steadier than req/s on a shared box.
            cpu_us: dict[str, list[float]] = {"floor": [], "shipyard": []}
            for i in range(max(args.repeat, harness.MIN_REPEAT)):
                sides = [("floor", floor_url, None), ("shipyard", url, token)]
                got: dict[str, dict[int, dict[str, float]]] = {}
                for side, target, secret in sides if i % 2 == 0 else sides[::-1]:
                    pid = (floor if side == "floor" else server).pid
                    before = cpu_seconds(pid)
                    got[side] = {32: load.measure(target, 32, args.duration, secret)}
                    spent = cpu_seconds(pid) - before
                    cpu_us[side].append(spent / got[side][32]["requests"] * 1e6)
                    got[side][8] = load.measure(target, 8, args.duration, secret)
                throughput.add(got["floor"][32]["rps"], got["shipyard"][32]["rps"])
                p99.add(got["floor"][8]["p99_ms"] + predict1, got["shipyard"][8]["p99_ms"])
                floor_got, ours_got = got["floor"], got["shipyard"]
                print(
                    f"rep {i + 1}: c=32 floor {floor_got[32]['rps']:.0f} req/s, shipyard "
                    f"{ours_got[32]['rps']:.0f}; c=8 p99 floor {floor_got[8]['p99_ms']:.2f} ms, "
                    f"shipyard {ours_got[8]['p99_ms']:.2f}",
                    flush=True,
                )
        finally:
            stop(server)
            stop(floor)
        cpu_ratios = [f / o for f, o in zip(cpu_us["floor"], cpu_us["shipyard"], strict=True)]
        print(
            f"  server CPU per request at c=32: floor {statistics.median(cpu_us['floor']):.1f} us, "
            f"shipyard {statistics.median(cpu_us['shipyard']):.1f} us; floor/shipyard median "
            f"{statistics.median(cpu_ratios):.3f} (min {min(cpu_ratios):.3f}, max "
            f"{max(cpu_ratios):.3f}): the throughput ratio a quiet, saturated core would give",
            flush=True,
        )
        # Metering on vs off: both servers up and loaded together for the whole comparison.
        on, on_url = serve_shipyard(directory, env, log="predictions-on")
        off, off_url = serve_shipyard(
            directory, {**env, "SHIPYARD_COST__METERING": "0"}, log="predictions-off"
        )
        try:
            ratios = metering_ratios(
                load,
                {"on": (on.pid, on_url), "off": (off.pid, off_url)},
                token,
                args.rounds,
                args.duration,
            )
        finally:
            stop(on)
            stop(off)
    metering = statistics.median(ratios)
    harness.report(
        "serving: shipyard serve vs a bare Starlette app (uvicorn+uvloop+httptools), wrk",
        [throughput, p99, native],
    )
    spread = f"min {min(ratios):.3f}, max {max(ratios):.3f}, n={len(ratios)}"
    print(f"  metering on/off server CPU per request: median {metering:.3f} ({spread})")
    verdict = "ok" if metering <= 1.03 else "MISS"
    print(f"RESULT serving_metering_overhead ratio={metering:.3f} target=1.03 {verdict}")


if __name__ == "__main__":
    main()
