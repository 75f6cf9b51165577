"""The disaster-recovery drill: restore the latest backup somewhere else and prove it serves.

``reference_batches`` runs at backup time: for every model with a ``production`` alias it keeps a
few rows of the bundle's reference sample and the predictions the production model gave them,
as extra files of the backup (sealed with it). ``run_drill`` then restores the backup into a
scratch SQLite store and blob folder, checks RELIABILITY.md's invariants there (registry
versions and aliases, every referenced blob present with its hash, the audit chain), loads each
production model from the restored registry, scores the stored rows and compares with the
recorded predictions. It measures the recovery time (restore + checks + first prediction) and
the recovery point (the backup's snapshot time against now).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import ShipyardError
from shipyard.registry.registry import ModelRegistry
from shipyard.security.at_rest import workspace_blob_store
from shipyard.security.audit import verify
from shipyard.security.audit_chain import security_store
from shipyard.store.artifacts import open_blob_store
from shipyard.store.backup.files import read_file
from shipyard.store.backup.manifest import EXTRA_DIR, seal_name
from shipyard.store.backup.restore import restore_backup
from shipyard.store.blob_refs import BlobRefs
from shipyard.store.sql import SqlStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import polars as pl

    from shipyard.core.settings import Settings
    from shipyard.registry.inference import Predictions
    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.artifacts.encrypted import BlobCipher
    from shipyard.store.backup.manifest import FileEntry
    from shipyard.store.security import SecurityStore

INDEX = "reference.json"
ALIAS = "production"
_LABEL = "__label"
_PROBA = "__proba_"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the drill's report."""

    name: str
    ok: bool
    detail: str


@dataclass(slots=True)
class DrillReport:
    """What the drill found, and the recovery time and point it measured."""

    backup_id: str
    checks: list[Check] = field(default_factory=list)
    recovery_time_s: float = 0.0
    recovery_point_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(c.ok for c in self.checks)


def reference_batches(registry: ModelRegistry, *, rows: int = 20) -> dict[str, bytes]:
    """Rows and the production models' predictions for them, as backup extra files.

    A production model that fails to load or predict does not stop the backup: its index entry
    records the error, and the drill reports it as a failed check.
    """
    index: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for number, model in enumerate(registry.list_models()):
        version = model["aliases"].get(ALIAS)
        if version is None:
            continue
        entry: dict[str, Any] = {"name": model["name"], "version": version, "file": None}
        index.append(entry)
        try:
            bundle = registry.load(f"{model['name']}:{version}")
            sample = bundle.reference_sample()
            if sample is None or sample.height == 0:
                continue
            sample = sample.head(rows)
            scored = _with_predictions(sample, bundle.predict(sample))
        except ShipyardError as e:  # the backup goes on; the drill reports it
            entry["error"] = e.message
            continue
        buffer = io.BytesIO()
        scored.write_parquet(buffer)
        entry["file"] = f"reference-{number}.parquet"
        files[entry["file"]] = buffer.getvalue()
    files[INDEX] = json.dumps({"alias": ALIAS, "models": index}).encode()
    return files


def _with_predictions(frame: pl.DataFrame, predictions: Predictions) -> pl.DataFrame:
    import polars as pl

    columns = [pl.Series(_LABEL, predictions.labels.tolist())]
    if predictions.proba is not None:
        columns += [
            pl.Series(f"{_PROBA}{j}", predictions.proba[:, j].tolist())
            for j in range(predictions.proba.shape[1])
        ]
    return frame.with_columns(columns)


def run_drill(
    folder: Path,
    scratch: Path,
    settings: Settings,
    *,
    cipher: BlobCipher | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> DrillReport:
    """Restore the backup in ``folder`` under ``scratch`` and check that it works.

    ``settings`` are the production workspace's: the drill needs its audit key and master key
    (both kept apart from the backup), and its registry limits.
    """
    started = time.monotonic()
    report = DrillReport(folder.name)
    store_url = f"sqlite:///{scratch / 'restored.db'}"
    try:
        restored = restore_backup(folder, store_url, str(scratch / "blobs"), cipher=cipher)
    except ShipyardError as e:
        report.checks.append(Check("restore", False, e.message))
        report.recovery_time_s = time.monotonic() - started
        return report
    manifest = restored.verified.manifest
    rows = sum(restored.rows.values())
    report.checks.append(
        Check("restore", True, f"{rows} rows, {restored.blobs} blobs in {restored.seconds:.2f} s")
    )
    store = SqlStore(store_url)
    try:
        blobs = workspace_blob_store(
            settings, open_blob_store(scratch / "blobs"), store, clock=clock
        )
        security = security_store(settings, store, clock=clock)
        registry = ModelRegistry(
            store, blobs, security=security, limits=settings.registry, clock=clock
        )
        report.checks += _guarded("registry and blobs", lambda: _invariants(registry, store, blobs))
        report.checks += _guarded("audit chain", lambda: [_audit(security)])
        report.checks += _guarded(
            "reference batch",
            lambda: _score_references(
                folder, manifest.backup_id, manifest.extras, registry, cipher, manifest.files
            ),
        )
    finally:
        store.close()
    report.recovery_time_s = time.monotonic() - started
    report.recovery_point_s = max(0.0, (clock.now_ms() - manifest.created_ms) / 1000)
    return report


def _guarded(name: str, checks: Callable[[], list[Check]]) -> list[Check]:
    """Run ``checks``; an error (a missing key, a bad row) is a failed check, not a crash."""
    try:
        return checks()
    except ShipyardError as e:
        return [Check(name, False, e.message)]


def _audit(security: SecurityStore) -> Check:
    result = verify(security)
    if result.ok:
        return Check("audit chain", True, f"{result.entries} entries")
    return Check("audit chain", False, f"entry {result.first_bad}: {result.problem}")


def _invariants(registry: ModelRegistry, store: SqlStore, blobs: BlobStore) -> list[Check]:
    problems = registry.check_invariants()
    models = registry.list_models()
    aliases = sum(len(m["aliases"]) for m in models)
    versions = sum(int(m["versions"]) for m in models)
    checks = [
        Check(
            "registry versions and aliases",
            not problems,
            "; ".join(problems[:3]) or f"{versions} versions, {aliases} aliases",
        )
    ]
    bad = []
    references = BlobRefs(store).live()
    for digest in sorted({r.digest for r in references}):
        if not blobs.exists(digest) or not blobs.verify(digest):
            bad.append(digest[:12])
    detail = f"missing or changed: {', '.join(bad[:5])}" if bad else f"{len(references)} references"
    checks.append(Check("referenced blobs and hashes", not bad, detail))
    return checks


def _score_references(
    folder: Path,
    backup_id: str,
    extras: tuple[str, ...],
    registry: ModelRegistry,
    cipher: BlobCipher | None,
    files: tuple[FileEntry, ...],
) -> list[Check]:
    if INDEX not in extras:
        return [Check("reference batch", True, "none stored with this backup")]

    def extra(name: str) -> bytes:
        path = f"{EXTRA_DIR}/{name}"
        entry = next(f for f in files if f.path in {path, f"{path}.sealed"})
        return b"".join(read_file(folder, entry, cipher, seal_name(backup_id, path)))

    index = json.loads(extra(INDEX))
    checks = []
    for model in index["models"]:
        label = f"{model['name']}@{index['alias']}"
        checks.append(_score_one(registry, label, model, extra))
    return checks or [Check("reference batch", True, "no production model at backup time")]


def _score_one(
    registry: ModelRegistry, label: str, model: dict[str, Any], extra: Callable[[str], bytes]
) -> Check:
    import polars as pl

    if model.get("error"):
        return Check(label, False, f"no reference batch: at backup time, {model['error']}")
    try:
        version = registry.get(label).version
        if version != model["version"]:
            return Check(label, False, f"alias holds v{version}, v{model['version']} at backup")
        started = time.monotonic()
        bundle = registry.load(label)
        if model["file"] is None:
            return Check(label, True, f"v{version} loads (no reference sample in its bundle)")
        stored = pl.read_parquet(io.BytesIO(extra(model["file"])))
        features = stored.select([c for c in stored.columns if not c.startswith("__")])
        now = bundle.predict(features)
    except ShipyardError as e:
        return Check(label, False, e.message)
    seconds = time.monotonic() - started
    same = stored[_LABEL].to_list() == now.labels.tolist()
    if now.proba is not None:
        recorded = np.column_stack(
            [stored[f"{_PROBA}{j}"].to_numpy() for j in range(now.proba.shape[1])]
        )
        same = same and bool(np.allclose(recorded, now.proba, rtol=0, atol=1e-9))
    detail = f"v{version}: {stored.height} rows scored in {seconds:.2f} s"
    return Check(label, same, detail if same else f"{detail}: predictions differ from backup time")
