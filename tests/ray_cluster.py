"""A real local Ray cluster for the tests: a head node and a second worker node, one CPU each.

One cluster serves every pytest-xdist worker of the session: the first to need it starts it
under a file lock and records its address and process groups; each user counts itself in and
out, and the last one out stops it. Nodes run ``ray start --block`` in their own process group,
so stopping is killing exactly those groups (never ``ray stop``, which would stop any Ray on the
machine). Ray's start-up (~5 s) is paid once per session, not per test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE_BYTES = 100 * 1024 * 1024
START_TIMEOUT_S = 120


def _free_port() -> int:
    # Outside Ray's default worker port range (10002-19999), which Ray checks at start.
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not 10_000 <= port <= 20_000:
            return port
    raise RuntimeError("no free port outside Ray's worker range")


def _node(args: list[str], log: Path, token: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [RAY, "start", "--block", "--num-cpus", "1", "--disable-usage-stats",
         "--object-store-memory", str(OBJECT_STORE_BYTES),
         "--dashboard-agent-listen-port", str(_free_port()), *args],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **_auth(token)},
    )  # fmt: skip


def _wait_started(log: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if "Ray runtime started" in text:
            return
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"ray start did not come up in {START_TIMEOUT_S}s:\n{text[-3000:]}")


def _stop(pids: list[int]) -> None:
    """SIGTERM each node's process group and every process below it, then SIGKILL what is left.

    Ray's worker processes run in process groups of their own: they are found as descendants
    of the ``ray start`` processes (before those are stopped) and stopped by pid.
    """
    family: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            node = psutil.Process(pid)
            family += [node, *node.children(recursive=True)]
    for pgid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, alive = psutil.wait_procs(family, timeout=5)
    for pgid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=10)  # gone before their temp folder is removed


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _auth(token: str) -> dict[str, str]:
    """Ray's token authentication, with the session's own token (never ~/.ray/auth_token)."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def _start(root: Path) -> dict[str, object]:
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = Path("/tmp") / f"ray-{os.getpid()}-{port}"  # Ray's socket paths must stay short
    pgids: list[int] = []
    try:
        head = _node(
            ["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
             "--include-dashboard", "false", "--temp-dir", str(temp)],
            root / "head.log",
            token,
        )  # fmt: skip
        pgids.append(head.pid)
        _wait_started(root / "head.log", head)
        worker = _node(
            ["--address", address, "--node-ip-address", "127.0.0.1"], root / "worker.log", token
        )
        pgids.append(worker.pid)
        _wait_started(root / "worker.log", worker)
    except BaseException:
        _stop(pgids)
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return {"address": address, "pgids": pgids, "users": 0, "temp": str(temp), "token": token}


@contextlib.contextmanager
def shared_cluster(root: Path) -> Iterator[str]:
    """The session's cluster address; started by the first user, stopped by the last.

    This process's environment gets the cluster's auth token, so a driver started here joins.
    """
    from filelock import FileLock  # comes with the ray extra

    state_file = root / "cluster.json"
    lock = FileLock(str(root) + ".lock")
    with lock:
        state = json.loads(state_file.read_text()) if state_file.exists() else None
        if state is None or not all(_alive(p) for p in state["pgids"]):
            if state is not None:
                _stop(state["pgids"])
            state = _start(root)
        state["users"] += 1
        state_file.write_text(json.dumps(state))
    os.environ.update(_auth(str(state["token"])))
    try:
        yield str(state["address"])
    finally:
        with lock:
            state = json.loads(state_file.read_text())
            state["users"] -= 1
            if state["users"] <= 0:
                _stop(state["pgids"])
                state_file.unlink()
                shutil.rmtree(state["temp"], ignore_errors=True)
            else:
                state_file.write_text(json.dumps(state))


def wait_for_nodes(ray: object, count: int) -> None:
    """Block until ``count`` nodes are alive in the cluster the driver joined."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[attr-defined]
        if len(nodes) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the Ray cluster did not reach {count} nodes")
