"""Backups against real faults: concurrent writers, SIGKILL mid-backup, SQLite → PostgreSQL.

RELIABILITY.md: a backup killed at any point leaves the previous ones valid and itself refused;
a snapshot taken while a writer commits is one consistent state (each metric batch and its
``latest_metrics`` row, written in one transaction, are both in it or both not); a restore into
PostgreSQL holds every row of every table, and the restored store takes new writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipyard.core.settings import load_settings
from shipyard.registry.registry import ModelRegistry
from shipyard.security.audit import verify
from shipyard.store.backup.catalog import list_backups, prune_backups
from shipyard.store.backup.create import create_backup
from shipyard.store.backup.manifest import BackupInvalid
from shipyard.store.backup.restore import restore_backup
from shipyard.store.backup.verify import verify_backup
from shipyard.track.workspace import Workspace
from tests.backups import populate, table_rows

SHIPYARD = Path(sys.executable).with_name("shipyard")
pytestmark = pytest.mark.slow


def _metric_state(url: str, run_id: str) -> tuple[int, int | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            count = c.execute(
                sa.text("SELECT count(*) FROM metrics WHERE run_id = :r AND key = 'm'"),
                {"r": run_id},
            ).scalar_one()
            latest = c.execute(
                sa.text("SELECT step FROM latest_metrics WHERE run_id = :r AND key = 'm'"),
                {"r": run_id},
            ).scalar()
            assert c.execute(sa.text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        engine.dispose()
    return int(count), latest


def test_a_backup_taken_while_a_writer_commits_is_consistent(
    workspace: Workspace, tmp_path: Path
) -> None:
    run = workspace.start_run(name="busy", experiment="exp")
    stop = threading.Event()
    logged = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        step = 0
        try:
            while not stop.is_set():
                run.log_metric("m", float(step), step=step)
                run.flush()  # one transaction: metric row + latest_metrics
                step += 1
                logged.set()
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert logged.wait(30)
    counts = []
    try:
        for n in range(3):
            result = create_backup(workspace.store, workspace.blobs, tmp_path / "bk")
            url = f"sqlite:///{tmp_path / f'restored-{n}.db'}"
            restore_backup(result.folder, url, str(tmp_path / f"blobs-{n}"))
            count, latest = _metric_state(url, run.run_id)
            assert latest is not None
            assert count == latest + 1, "metrics and latest_metrics from different moments"
            counts.append(count)
    finally:
        stop.set()
        writer.join(30)
        run.end()
    assert not errors
    assert counts == sorted(counts)
    assert counts[-1] > counts[0], "the writer made no progress while backups ran"


def _backup_process(fault: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if fault is not None:
        env["SHIPYARD_FAULT"] = f"{fault}:kill"
    return subprocess.run(
        [str(SHIPYARD), "backup", "create", "--reference-rows", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize(
    "fault", ["backup.after_snapshot", "backup.after_blob", "backup.before_manifest"]
)
def test_sigkill_during_a_backup_leaves_the_previous_one_valid(fault: str, tmp_path: Path) -> None:
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path, model=False, tag="a")
    first = _backup_process(None)
    assert first.returncode == 0, first.stderr
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path, model=False, tag="b")  # a new blob for the next backup to copy

    killed = _backup_process(fault)
    assert killed.returncode == -9, killed.stderr

    target = tmp_path / ".shipyard" / "backups"
    good, partial = list_backups(target)
    assert good.manifest is not None
    assert partial.manifest is None
    verify_backup(good.folder)
    with pytest.raises(BackupInvalid, match=r"incomplete.*MANIFEST\.json is missing"):
        verify_backup(partial.folder)
    with pytest.raises(BackupInvalid, match="incomplete"):
        restore_backup(partial.folder, f"sqlite:///{tmp_path / 'r.db'}", str(tmp_path / "rb"))

    after = _backup_process(None)  # the next backup is not disturbed by the partial one
    assert after.returncode == 0, after.stderr
    newest = list_backups(target)[-1]
    assert newest.manifest is not None
    assert len(verify_backup(newest.folder).manifest.blobs) == 2

    if fault == "backup.after_snapshot":  # killed while its snapshot was still in scratch
        assert list(target.glob(".scratch-*"))
    pruned = prune_backups(target, keep=1)
    assert pruned.backups == sorted([good.backup_id, partial.backup_id])
    assert not list(target.glob(".scratch-*"))
    verify_backup(newest.folder)


@pytest.mark.postgres
def test_restore_sqlite_into_postgresql_keeps_every_row(tmp_path: Path, pg_url: str) -> None:
    with Workspace.open(tmp_path) as ws:
        populate(ws, tmp_path)
        source_rows = table_rows(ws.store.engine)
        result = create_backup(ws.store, ws.blobs, tmp_path / "bk")

    restored = restore_backup(result.folder, pg_url, str(tmp_path / "pg-blobs"))

    engine = sa.create_engine(pg_url)
    try:
        target_rows = table_rows(engine)
    finally:
        engine.dispose()
    for table in ("runs", "metrics", "params", "datasets", "model_versions", "model_aliases"):
        assert source_rows[table], f"the test wrote no {table} rows"
    assert source_rows["audit_log"]
    assert {t: len(r) for t, r in target_rows.items()} == restored.rows
    for table, rows in source_rows.items():
        assert target_rows[table] == rows, f"table {table} differs after the restore"

    settings = load_settings(
        project_dir=tmp_path, store_url=pg_url, artifact_root=str(tmp_path / "pg-blobs")
    )
    with Workspace(settings) as ws:
        registry = ModelRegistry.for_workspace(ws)
        assert registry.check_invariants() == []
        assert verify(registry.security).ok
        with ws.start_run(name="after", experiment="exp") as run:  # sequences moved past ids
            run.log_metric("loss", 0.1, step=1)
        ws.flush()
        assert len(ws.search_runs()) == len(source_rows["runs"]) + 1


@pytest.mark.postgres
def test_a_postgresql_backup_restores_into_postgresql_and_sqlite(
    tmp_path: Path, pg_url: str, pg_admin: sa.Engine
) -> None:
    settings = load_settings(
        project_dir=tmp_path, store_url=pg_url, artifact_root=str(tmp_path / "artifacts")
    )
    with Workspace(settings) as ws:
        populate(ws, tmp_path)
        source_rows = table_rows(ws.store.engine)
        result = create_backup(ws.store, ws.blobs, tmp_path / "bk")
    assert result.manifest.source_backend == "postgresql"

    second = f"shipyard_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{second}"'))
    second_url = pg_admin.url.set(database=second).render_as_string(hide_password=False)
    sqlite_url = f"sqlite:///{tmp_path / 'r.db'}"
    try:
        restore_backup(result.folder, second_url, str(tmp_path / "b1"))
        restore_backup(result.folder, sqlite_url, str(tmp_path / "b2"))
        for url in (second_url, sqlite_url):
            engine = sa.create_engine(url)
            try:
                assert table_rows(engine) == source_rows, url
            finally:
                engine.dispose()
    finally:
        with pg_admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{second}" WITH (FORCE)'))
