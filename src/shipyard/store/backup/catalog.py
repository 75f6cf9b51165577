"""``backup list`` and retention: the backups of a target, and pruning all but the newest N.

Pruning removes whole backup folders (the oldest complete ones beyond ``keep``, and interrupted
ones older than the newest complete backup), then the blobs no remaining manifest lists. Blobs
are shared between backups, so a blob stays while any kept backup needs it. It runs under the
target's lock: a backup being written (which may count on a blob already there) waits for it or
is refused, never broken.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipyard.core.errors import InvalidArgument
from shipyard.store.backup.create import SCRATCH_PREFIX, target_lock
from shipyard.store.backup.manifest import (
    BACKUP_NAME,
    BLOBS_DIR,
    BackupInvalid,
    Manifest,
    fsync_dir,
    read_manifest,
)

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True, slots=True)
class Listing:
    """One backup folder: complete (with its manifest) or not (with why)."""

    backup_id: str
    folder: Path
    manifest: Manifest | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class Pruned:
    """What ``prune`` removed."""

    backups: list[str]
    blobs: int
    kept: list[str]


def list_backups(target: Path) -> list[Listing]:
    """Return the target's backup folders, oldest first (without checking their files)."""
    if not target.is_dir():
        return []
    listings = []
    for folder in sorted(p for p in target.iterdir() if BACKUP_NAME.fullmatch(p.name)):
        try:
            listings.append(Listing(folder.name, folder, read_manifest(folder), None))
        except BackupInvalid as e:
            listings.append(Listing(folder.name, folder, None, e.message))
    return listings


def latest_backup(target: Path) -> Listing | None:
    """Return the newest complete backup of the target, or None."""
    complete = [b for b in list_backups(target) if b.manifest is not None]
    return complete[-1] if complete else None


def prune_backups(target: Path, keep: int) -> Pruned:
    """Keep the newest ``keep`` complete backups; remove the rest and the blobs only they used.

    Raises:
        InvalidArgument: ``keep`` is below 1.
        Conflict: A backup is being written to the target.
    """
    if keep < 1:
        raise InvalidArgument(f"--keep must be at least 1 (got {keep}); the newest backup stays")
    with target_lock(target):
        listings = list_backups(target)
        complete = [b for b in listings if b.manifest is not None]
        kept = complete[-keep:]
        newest = kept[-1].backup_id if kept else ""
        doomed = list(complete[:-keep]) + [
            b for b in listings if b.manifest is None and b.backup_id < newest
        ]
        for listing in doomed:
            shutil.rmtree(listing.folder)
        for scratch in target.glob(f"{SCRATCH_PREFIX}*"):  # left by a killed create
            shutil.rmtree(scratch, ignore_errors=True)
        if doomed:
            fsync_dir(target)
        needed = {d for b in kept if b.manifest is not None for d in b.manifest.blobs}
        removed = 0
        blobs = target / BLOBS_DIR
        if blobs.is_dir() and kept:
            for shard in blobs.iterdir():
                for path in shard.iterdir():
                    if path.name not in needed:
                        path.unlink()
                        removed += 1
    return Pruned(sorted(b.backup_id for b in doomed), removed, [b.backup_id for b in kept])
