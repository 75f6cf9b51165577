"""Reading a registry whole: the invariant check fault tests run, and versions side by side.

Both read every version (blobs, bundles), unlike the registry's own operations, which touch
one version at a time; kept apart so ``registry.py`` holds the operations that move aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument
from shipyard.registry.gate import run_gate
from shipyard.store.blob_refs import MODEL_VERSION, BlobRefs, model_version_ref

if TYPE_CHECKING:
    import polars as pl

    from shipyard.registry.registry import ModelRegistry


def check_invariants(registry: ModelRegistry, *, load_aliases: bool = True) -> list[str]:
    """List breaches of RELIABILITY.md invariants 1-2; empty when the registry is sound.

    Every version's blob exists and hashes to its recorded sha256 (except versions retention
    released: their blob may be gone, on purpose); versions of each model are 1..n without
    gaps; every alias points to an existing version, which (with ``load_aliases``) reads
    back as a verified bundle. Meant for fault tests and ``doctor`` style checks: it reads
    every blob once.
    """
    problems: list[str] = []
    released = BlobRefs(registry._stores.store).released()
    gone = {ref for kind, ref in released if kind == MODEL_VERSION}
    for model in registry.store.list_models():
        versions = registry.store.list_versions(model["name"])
        numbers = [v.version for v in versions]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{model['name']}: versions {numbers} are not 1..{len(numbers)}")
        for v in versions:
            if model_version_ref(v.name, v.version) in gone:
                continue
            try:
                sound = registry.blobs.verify(v.bundle_sha256)
            except ArtifactNotFound:
                problems.append(f"{v.ref}: bundle blob {v.bundle_sha256[:12]} is missing")
                continue
            if not sound:
                problems.append(f"{v.ref}: bundle blob {v.bundle_sha256[:12]} is corrupt")
        for alias, number in sorted(model["aliases"].items()):
            if number not in numbers:
                problems.append(f"{model['name']}@{alias} points to missing version {number}")
            elif load_aliases:
                try:
                    registry.load(registry.store.get_version(model["name"], number))
                except (IntegrityFailure, ArtifactNotFound, InvalidArgument) as e:
                    problems.append(f"{model['name']}@{alias} does not load: {e.message}")
    return problems


def compare_versions(
    registry: ModelRegistry,
    name: str,
    versions: list[int],
    *,
    test_data: pl.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """Versions side by side: their recorded metrics and, on one test frame, fresh scores.

    Without ``test_data`` the newest version's held-out split is used for all of them.
    """
    chosen = [registry.store.get_version(name, v) for v in versions]
    if not chosen:
        raise InvalidArgument("compare needs at least one version")
    bundles = [registry.load(v) for v in chosen]
    frame = test_data if test_data is not None else registry._test_frame(bundles[-1])
    rows = []
    for version, bundle in zip(chosen, bundles, strict=True):
        verdict = run_gate(bundle, None, frame, margin=0.0)
        rows.append(
            {
                "version": version.version,
                "estimator": version.metrics.get("estimator"),
                "metric": version.primary_metric,
                "recorded_test": version.metrics.get("test"),
                "same_rows_score": verdict.candidate_score,
                "rows": verdict.rows,
                "created_ms": version.created_ms,
                "run_id": version.run_id,
            }
        )
    return rows
