"""Meters that are not a run's resources: a server's per-version counters and stored bytes.

Servers count, per model version and variant, requests, predictions (rows) and the model's CPU
seconds, and expose them on ``GET /metrics`` (``shipyard_version_*``; see
``shipyard.serve.metrics.Metrics``). This module reads that exposition text; fetching it is the
caller's job (the CLI), so nothing here speaks HTTP. Storage is read from the metadata store:
one row per distinct blob (artifacts and dataset versions share content-addressed blobs, and a
blob is stored, and paid for, once), in the ``hot`` tier unless told otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families

from shipyard.core.errors import InvalidArgument
from shipyard.store.blob_refs import BlobRefs

if TYPE_CHECKING:
    from shipyard.store.sql import SqlStore

_SERIES = {
    "shipyard_version_requests": "requests",
    "shipyard_version_rows": "predictions",
    "shipyard_version_cpu_seconds": "cpu_seconds",
}


@dataclass(frozen=True, slots=True)
class ServingMeter:
    """One model version's serving counters under one variant (alias)."""

    model: str
    version: int
    variant: str
    requests: int
    predictions: int
    cpu_seconds: float


def parse_serving_meters(text: str) -> list[ServingMeter]:
    """Read the ``shipyard_version_*`` counters from a server's Prometheus exposition.

    Raises:
        InvalidArgument: The text is not Prometheus exposition format.
    """
    found: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        raise InvalidArgument(f"not a Prometheus metrics page: {e}") from e
    for family in families:
        for sample in family.samples:
            base = sample.name.removesuffix("_total")
            field = _SERIES.get(base)
            if field is None or sample.name.endswith("_created"):
                continue
            labels = sample.labels
            key = (labels.get("model", ""), labels.get("version", ""), labels.get("variant", ""))
            found[key][field] = found[key].get(field, 0.0) + float(sample.value)
    meters = []
    for (model, version, variant), values in sorted(found.items()):
        if not version.isdigit():
            continue
        meters.append(
            ServingMeter(
                model,
                int(version),
                variant,
                int(values.get("requests", 0)),
                int(values.get("predictions", 0)),
                values.get("cpu_seconds", 0.0),
            )
        )
    return meters


def difference(after: list[ServingMeter], before: list[ServingMeter]) -> list[ServingMeter]:
    """Return what the counters grew by between two readings (a load test's window)."""
    earlier = {(m.model, m.version, m.variant): m for m in before}
    out = []
    for m in after:
        b = earlier.get((m.model, m.version, m.variant))
        if b is None:
            out.append(m)
            continue
        out.append(
            ServingMeter(
                m.model,
                m.version,
                m.variant,
                m.requests - b.requests,
                m.predictions - b.predictions,
                m.cpu_seconds - b.cpu_seconds,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One stored blob, what refers to it, and its tier."""

    digest: str
    size_bytes: int
    kind: str  # "artifact" or "dataset"
    owner: str  # run id of an artifact, dataset name@id prefix of a dataset
    tier: str


def storage_usage(store: SqlStore) -> list[StoredBlob]:
    """Return every distinct stored blob with its size, what refers to it and its tier.

    Tiers come from ``blob_tiers`` (written when retention moves a blob); others are ``hot``.

    Args:
        store: The metadata store (``Workspace.store``).
    """
    rows, tiers = BlobRefs(store).stored_blobs()
    blobs: dict[str, StoredBlob] = {}
    for r in rows:  # datasets first: a blob both hold is listed as the dataset's
        blobs.setdefault(r.digest, StoredBlob(r.digest, r.size_bytes, r.kind, r.owner, "hot"))
    return [
        StoredBlob(b.digest, b.size_bytes, b.kind, b.owner, tiers.get(b.digest, "hot"))
        for b in sorted(blobs.values(), key=lambda b: (-b.size_bytes, b.digest))
    ]
