"""The same MLflow client code against Shipyard's tracking server and against ``mlflow server``.

Issue 22: with ``MLFLOW_TRACKING_URI`` pointed at Shipyard, unchanged MLflow code must log at
least 5x faster than against MLflow's own server. Both servers run as separate processes on
127.0.0.1, each on a fresh store: ``shipyard tracking-server`` on a SQLite workspace, and
``mlflow server`` with a SQLite backend store (``--workers 1``, artifacts served), installed
in a virtualenv of its own under the cache folder (``uv venv`` + ``uv pip install mlflow``;
the benchmark says why and stops if that cannot be built: full ``mlflow`` is never a
dependency of Shipyard). One client script (this virtualenv's ``mlflow-skinny``, the same
version as the server) runs against each, interleaved and alternating which goes first:

- ``log_metric``: one run, ``--metrics`` calls of ``mlflow.log_metric(key, value, step=i)``
  (each one HTTP request, as MLflow's client sends them); time per call.
- ``search``: ``--searches`` calls of ``mlflow.search_runs`` with a filter and an order over
  20 finished runs of the experiment (logged before the clock starts); time per call.

The ratio is Shipyard's time over MLflow's of the same repetition (lower is better; target
0.2, i.e. 5x faster). MLflow's server is a peer doing the same job, not a lower bound.
Run: ``.venv/bin/python benchmarks/mlflow_api.py [--metrics N] [--searches N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import MIN_REPEAT, Comparison, report

TARGET = 0.2  # Shipyard's time / MLflow's: at least 5x faster
ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shipyard-bench"

CLIENT = r"""
import json, os, sys, time
import mlflow
metrics, searches, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
mlflow.set_experiment(f"bench-{tag}")
for i in range(20):  # the runs searched later, not timed
    with mlflow.start_run(run_name=f"seed-{i}"):
        mlflow.log_params({"lr": 0.01 * (i + 1), "model": "lgbm" if i % 2 else "xgb"})
        mlflow.log_metric("auc", 0.5 + i / 50)
        mlflow.set_tags({"team": "risk"})
with mlflow.start_run(run_name="timed"):
    mlflow.log_params({"lr": 0.1, "depth": 6})
    started = time.perf_counter()
    for step in range(metrics):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    per_metric = (time.perf_counter() - started) / metrics
    mlflow.set_tags({"team": "risk"})
    history = mlflow.MlflowClient().get_metric_history(mlflow.active_run().info.run_id, "loss")
    assert len(history) == metrics, len(history)
started = time.perf_counter()
for _ in range(searches):
    found = mlflow.search_runs(
        filter_string="metrics.auc > 0.7 AND params.model = 'lgbm' AND tags.team = 'risk'",
        order_by=["metrics.auc DESC"], output_format="list",
    )
per_search = (time.perf_counter() - started) / searches
assert len(found) == 5, len(found)
print(json.dumps({"per_metric_s": per_metric, "per_search_s": per_search}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer within {timeout_s:.0f} s")


@contextmanager
def serving(argv: list[str], probe: str, env: dict[str, str]) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **env})
        try:
            wait_ready(probe, process)
            yield
        except RuntimeError:
            log.seek(0)
            print(log.read().decode(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def mlflow_venv() -> Path | None:
    """The cached virtualenv with full ``mlflow`` of the client's version; None if unbuildable."""
    import mlflow

    version = mlflow.__version__
    venv = CACHE / f"mlflow-{version}"
    binary = venv / "bin" / "mlflow"
    if binary.exists():
        return venv
    uv = ROOT / ".tools" / "bin" / "uv"
    commands = [
        [str(uv), "venv", str(venv), "--python", f"{sys.version_info[0]}.{sys.version_info[1]}"],
        [str(uv), "pip", "install", "--python", str(venv / "bin" / "python"), f"mlflow=={version}"],
    ]
    for command in commands:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"SKIP: cannot build the mlflow server environment ({' '.join(command)}):")
            print(done.stderr[-2000:])
            return None
    return venv


def client_run(url: str, token: str | None, metrics: int, searches: int) -> dict[str, float]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PYTHONWARNINGS": "ignore",
    }
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    tag = f"{time.time_ns()}"
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(metrics), str(searches), tag],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the client script failed against {url}:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return dict(json.loads(lines[-1]))


def shipyard_token(project: Path) -> str:
    from shipyard.security.accounts import Accounts
    from shipyard.security.audit_chain import security_store
    from shipyard.security.identities import Identity, Kind
    from shipyard.security.roles import Role
    from shipyard.track.workspace import Workspace

    boot = Identity(name="bench", kind=Kind.LOCAL, project="project", role=Role.ADMIN)
    with Workspace.open(project) as workspace:
        accounts = Accounts(security_store(workspace.settings, workspace.store))
        accounts.create_user(boot, "bench-client")
        accounts.grant(boot, "bench-client", Role.DATA_SCIENTIST, "project")
        return accounts.create_token(boot, "bench-client").text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import mlflow  # the client side: mlflow-skinny of the dev environment
    except ImportError:
        print("SKIP: the MLflow client is not installed (`make .venv/.synced` installs it)")
        return
    venv = mlflow_venv()
    if venv is None:
        return
    with tempfile.TemporaryDirectory(prefix="shipyard-mlflow-bench-") as folder:
        root = Path(folder)
        project = root / "shipyard"
        project.mkdir()
        token = shipyard_token(project)
        ours_port, theirs_port = free_port(), free_port()
        ours_url, theirs_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{theirs_port}"
        shipyard = [
            sys.executable, "-m", "shipyard.cli.main", "--project-dir", str(project),
            "tracking-server", "--port", str(ours_port),
        ]  # fmt: skip
        mlflow_server = [
            str(venv / "bin" / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "mlflow-artifacts"),
            "--host", "127.0.0.1", "--port", str(theirs_port), "--workers", "1",
        ]  # fmt: skip
        env = {"SHIPYARD_TRACKING__CAPTURE_GIT": "false"}
        with (
            serving(shipyard, f"{ours_url}/v2/health/live", env),
            serving(mlflow_server, f"{theirs_url}/health", {}),
        ):
            sides = {"mlflow": (theirs_url, None), "shipyard": (ours_url, token)}
            log_metric = Comparison("mlflow_api_log_metric", TARGET, peer=True)
            search = Comparison("mlflow_api_search", TARGET, peer=True)
            for i in range(max(args.repeat, MIN_REPEAT)):  # as harness.interleave does
                order = ("mlflow", "shipyard") if i % 2 == 0 else ("shipyard", "mlflow")
                got = {
                    name: client_run(*sides[name], args.metrics, args.searches) for name in order
                }
                log_metric.add(got["mlflow"]["per_metric_s"], got["shipyard"]["per_metric_s"])
                search.add(got["mlflow"]["per_search_s"], got["shipyard"]["per_search_s"])
    report(
        f"MLflow client {mlflow.__version__}: {args.metrics:,} log_metric calls and "
        f"{args.searches} search_runs per repetition; peer: mlflow server (SQLite backend, "
        "1 worker); interleaved, ratio per repetition (Shipyard / MLflow)",
        [log_metric, search],
    )


if __name__ == "__main__":
    main()
