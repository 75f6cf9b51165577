"""Backup and restore against the bare copy of the same bytes (issue 20).

A workspace on SQLite with ``--metrics`` metric rows and ``--blobs`` artifacts of 256 KiB:

- ``backup_create_full``: ``create_backup`` into an empty target, against the floor of copying
  the same data durably with no checks: SQLite's online backup API to a file, then every blob
  file copied, each file and its folder entry fsynced (the least RELIABILITY.md lesson 5
  asks). Shipyard also checks the snapshot (``quick_check``), hashes everything it writes and
  writes the manifest.
- ``backup_create_incremental``: a second ``create_backup`` into the same target (every blob
  already there), against the floor of the snapshot alone (online backup API, fsync).
- ``restore_sqlite``: ``restore_backup`` into a new SQLite file and blob folder (it verifies
  every file's SHA-256 first), against copying the snapshot and blobs back durably with no checks.

Targets: full and incremental backups <= 3x their floors, restore <= 4x. Interleaved
repetitions, ratio per repetition (``harness.py``). The machine may be shared: compare ratios,
not seconds.

Run: ``.venv/bin/python benchmarks/backup.py [--metrics 200000] [--blobs 40] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from harness import Comparison, interleave, report

from shipyard.core.settings import load_settings
from shipyard.store.backup.create import create_backup
from shipyard.store.backup.restore import restore_backup
from shipyard.track.workspace import Workspace

FULL_TARGET = 3.0
INCREMENTAL_TARGET = 3.0
RESTORE_TARGET = 4.0


def _build(root: Path, metrics: int, blobs: int) -> Workspace:
    settings = load_settings(project_dir=root, tracking={"capture_git": False})
    ws = Workspace(settings)
    runs = 20
    per_run = max(1, metrics // runs)
    for r in range(runs):
        with ws.start_run(name=f"r{r}", experiment="bench") as run:
            for step in range(per_run):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            for b in range(r, blobs, runs):
                run.log_artifact(os.urandom(256 * 1024), name=f"blob-{b}.bin")
    ws.flush()
    return ws


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsynced_copy(source: Path, destination: Path) -> None:
    """The least a durable copy does (RELIABILITY.md lesson 5): the file, then its entry."""
    shutil.copyfile(source, destination)
    with open(destination, "rb+") as out:
        os.fsync(out.fileno())
    _fsync_dir(destination.parent)


def _snapshot(database: Path, destination: Path) -> None:
    source = sqlite3.connect(database)
    target = sqlite3.connect(destination)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    with open(destination, "rb+") as out:
        os.fsync(out.fileno())
    _fsync_dir(destination.parent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=200_000)
    parser.add_argument("--blobs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        root = Path(tmp)
        ws = _build(root / "ws", args.metrics, args.blobs)
        database = Path(ws.settings.resolved_store_url.removeprefix("sqlite:///"))
        blob_files = [p for p in Path(ws.settings.resolved_artifact_root).rglob("*") if p.is_file()]
        counter = iter(range(1_000_000))

        def floor_full() -> float:
            out = root / f"floor-{next(counter)}"
            out.mkdir()
            started = time.perf_counter()
            _snapshot(database, out / "metadata.sqlite")
            for i, path in enumerate(blob_files):
                _fsynced_copy(path, out / f"b{i}")
            return time.perf_counter() - started

        targets: list[Path] = []

        def ours_full() -> float:
            target = root / f"target-{next(counter)}"
            started = time.perf_counter()
            create_backup(ws.store, ws.blobs, target)
            elapsed = time.perf_counter() - started
            targets.append(target)
            return elapsed

        def floor_incremental() -> float:
            out = root / f"floor-{next(counter)}.sqlite"
            started = time.perf_counter()
            _snapshot(database, out)
            return time.perf_counter() - started

        def ours_incremental() -> float:
            started = time.perf_counter()
            create_backup(ws.store, ws.blobs, targets[0])
            return time.perf_counter() - started

        backup = create_backup(ws.store, ws.blobs, root / "restore-source").folder
        backup_files = [p for p in backup.parent.rglob("*") if p.is_file()]

        def floor_restore() -> float:
            out = root / f"floor-{next(counter)}"
            out.mkdir()
            started = time.perf_counter()
            for i, path in enumerate(backup_files):
                _fsynced_copy(path, out / f"f{i}")
            return time.perf_counter() - started

        def ours_restore() -> float:
            out = root / f"restored-{next(counter)}"
            started = time.perf_counter()
            restore_backup(backup, f"sqlite:///{out / 'x.db'}", str(out / "blobs"))
            return time.perf_counter() - started

        full = interleave(
            floor_full, ours_full, Comparison("backup_create_full", FULL_TARGET), args.repeat
        )
        incremental = interleave(
            floor_incremental,
            ours_incremental,
            Comparison("backup_create_incremental", INCREMENTAL_TARGET),
            args.repeat,
        )
        restore = interleave(
            floor_restore, ours_restore, Comparison("restore_sqlite", RESTORE_TARGET), args.repeat
        )
        size_mb = database.stat().st_size / 1e6
        ws.close()
    report(
        f"backup: SQLite workspace of {size_mb:.1f} MB ({args.metrics} metric rows), "
        f"{args.blobs} blobs of 256 KiB",
        [full, incremental, restore],
    )


if __name__ == "__main__":
    main()
