"""Many processes, killed processes, terminated processes: the store stays whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.store.entities import RunStatus
from shipyard.store.sql import SqlStore

WORKER = Path(__file__).with_name("logging_worker.py")
REPO = Path(__file__).resolve().parents[2]
SHIPYARD = Path(sys.executable).with_name("shipyard")

pytestmark = pytest.mark.slow


def worker_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(
        SHIPYARD_PROJECT_DIR=str(tmp_path),
        SHIPYARD_STORE_URL=store_url,
        SHIPYARD_ARTIFACT_ROOT=str(tmp_path / "artifacts"),
        SHIPYARD_TRACKING__CAPTURE_GIT="false",
        PYTHONPATH=str(REPO),
    )
    return env


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_processes_log_into_one_store(store_url: str, tmp_path: Path) -> None:
    """8 x 2,000 metrics at once: all 16,000 stored, no 'database is locked' reaches anyone."""
    SqlStore(store_url).close()  # the workers also race on opening; make the test about writes
    env = worker_env(store_url, tmp_path)
    workers = [start_worker(env, "steady", "2000", f"w{i}") for i in range(8)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "locked" not in err.lower()
    store = SqlStore(store_url)
    try:
        run_ids = [out.strip() for out, _ in outputs]
        assert store.count_metrics(run_ids) == 16_000
        for run_id in run_ids:
            run = store.get_run(run_id)
            assert run.status is RunStatus.FINISHED
            assert run.metrics["value"] == 1999.0
    finally:
        store.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(
    store_url: str, tmp_path: Path
) -> None:
    env = worker_env(store_url, tmp_path)
    workers = [start_worker(env, "steady", "10", f"open{i}") for i in range(6)]
    for worker in workers:
        _, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err
    store = SqlStore(store_url)
    try:
        with store.engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert len(versions) == 1
        assert len(store.list_experiments()) == 1
    finally:
        store.close()


def _read_until_flushed(worker: subprocess.Popen[str], at_least: int) -> tuple[str, int]:
    assert worker.stdout is not None
    run_id = worker.stdout.readline().strip()
    flushed = 0
    while flushed < at_least:
        line = worker.stdout.readline()
        assert line, f"worker died early: {worker.stderr.read() if worker.stderr else ''}"
        flushed = int(line.split()[1])
    return run_id, flushed


def test_sigkill_while_logging_loses_only_unflushed_values(store_url: str, tmp_path: Path) -> None:
    env = worker_env(store_url, tmp_path)
    worker = start_worker(env, "crash", "500")
    run_id, flushed = _read_until_flushed(worker, 3000)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    store = SqlStore(store_url)  # opens cleanly after the crash
    try:
        if store.engine.dialect.name == "sqlite":
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert store.count_metrics([run_id]) >= flushed
        assert store.get_run(run_id).status is RunStatus.RUNNING
        gc = subprocess.run(
            [str(SHIPYARD), "runs", "gc"], env=env, capture_output=True, text=True, timeout=120
        )
        assert gc.returncode == 0, gc.stderr
        assert run_id[:8] in gc.stdout
        killed = store.get_run(run_id)
        assert killed.status is RunStatus.KILLED
        assert killed.error is not None
        assert "is gone" in killed.error
    finally:
        store.close()


def test_sigterm_ends_the_run_killed_and_flushes(store_url: str, tmp_path: Path) -> None:
    env = worker_env(store_url, tmp_path)
    worker = start_worker(env, "term", "200")
    run_id, flushed = _read_until_flushed(worker, 400)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 128 + signal.SIGTERM, err
    store = SqlStore(store_url)
    try:
        run = store.get_run(run_id)
        assert run.status is RunStatus.KILLED
        assert store.count_metrics([run_id]) >= flushed
    finally:
        store.close()


def test_a_run_left_open_ends_at_exit(store_url: str, tmp_path: Path) -> None:
    env = worker_env(store_url, tmp_path)
    opened = start_worker(env, "open", "1234")
    out, err = opened.communicate(timeout=120)
    assert opened.returncode == 0, err
    raised = start_worker(env, "raise", "0")
    out2, _ = raised.communicate(timeout=120)
    assert raised.returncode == 1
    store = SqlStore(store_url)
    try:
        left_open = store.get_run(out.strip())
        assert left_open.status is RunStatus.FINISHED
        assert store.count_metrics([left_open.run_id]) == 1234
        escaped = store.get_run(out2.strip())
        assert escaped.status is RunStatus.FAILED
        assert escaped.error is not None
        assert "escaped the script" in escaped.error
    finally:
        store.close()
