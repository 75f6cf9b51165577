"""The evidence a promotion request carries, built from what the gate and cost already compute.

Frozen when the request is made, stored with it (``review_evidence``) with the SHA-256 of its
canonical JSON, which every decision's audit entry repeats: a reviewer approves *this* evidence.
Each part is there when its inputs are:

- ``gate``: the gate's verdict, both models scored on the same rows (always).
- ``intervals``: each model's recorded test metrics with their 95% bootstrap intervals, and
  ``paired``: the candidate's lead over the holder on the gate's rows with its paired
  bootstrap interval (``registry.gate_intervals``).
- ``slices``: the candidate's per-slice test metrics, if the trainer computed them.
- ``drift``: how the candidate's training data differs from the holder's (profiles: added and
  removed columns, type changes, null rate and mean shifts), when both name their data.
- ``cost``: the candidate's prediction latency on the gate's rows and, priced with the
  workspace's instance, its cost per 1,000 predictions (``cost.tradeoffs``' rule).
"""

from __future__ import annotations

import hashlib
import math
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ShipyardError
from shipyard.security.audit import canonical_json

if TYPE_CHECKING:
    import polars as pl

    from shipyard.core.settings import Settings
    from shipyard.cost.catalog import ActiveInstance
    from shipyard.registry.bundle import Bundle
    from shipyard.registry.verdict import GateVerdict
    from shipyard.store.stores import StoreSet

_DRIFT_COLUMNS = 50  # the most columns listed; the rest are counted
_EXP = Decimal("0.000000001")  # money to the nano-dollar, as `shipyard cost` prints it


def build_evidence(
    *,
    verdict: GateVerdict,
    candidate: Bundle,
    holder: Bundle | None,
    frame: pl.DataFrame,
    stores: StoreSet,
    price: ActiveInstance | None,
) -> dict[str, Any]:
    """Everything a reviewer should see about a candidate, as plain JSON."""
    from shipyard.registry.gate_intervals import paired_lead_interval  # metrics: not at import

    metrics = candidate.manifest.metrics
    return {
        "gate": verdict.to_dict(),
        "intervals": {
            "candidate": _finite(metrics.get("test")),
            "holder": None if holder is None else _finite(holder.manifest.metrics.get("test")),
            "paired": _finite(paired_lead_interval(candidate, holder, frame)),
        },
        "slices": _finite(metrics.get("slices")),
        "drift": _drift(candidate, holder, stores),
        "cost": _cost(candidate, frame, price),
    }


def evidence_sha256(evidence: dict[str, Any]) -> str:
    """SHA-256 of the evidence's canonical JSON: what decisions' audit entries point to."""
    return hashlib.sha256(canonical_json(evidence).encode("utf-8")).hexdigest()


def _drift(candidate: Bundle, holder: Bundle | None, stores: StoreSet) -> dict[str, Any] | None:
    if holder is None:
        return None
    new = candidate.manifest.lineage.dataset_ids.get("source")
    old = holder.manifest.lineage.dataset_ids.get("source")
    if not new or not old:
        return None
    if new == old:
        return {"holder_data": old, "candidate_data": new, "same_data": True, "columns": []}
    from shipyard.data.datasets import diff

    try:
        found = diff(stores, old, new)
    except ShipyardError as e:  # the holder's data may have been erased or collected since
        return {"holder_data": old, "candidate_data": new, "unavailable": e.message}
    columns = [
        {
            "column": c.name,
            "null_rate": [c.null_rate_a, c.null_rate_b],
            "mean": [c.mean_a, c.mean_b],
            "distinct": [c.distinct_a, c.distinct_b],
        }
        for c in found.columns
        if (c.null_rate_a, c.mean_a, c.distinct_a) != (c.null_rate_b, c.mean_b, c.distinct_b)
    ]
    found_drift: dict[str, Any] = _finite(
        {
            "holder_data": old,
            "candidate_data": new,
            "same_data": False,
            "rows": [found.a.row_count, found.b.row_count],
            "added": list(found.added),
            "removed": list(found.removed),
            "type_changes": {k: list(v) for k, v in found.type_changes.items()},
            "columns": columns[:_DRIFT_COLUMNS],
            "columns_changed": len(columns),
        }
    )
    return found_drift


def _cost(candidate: Bundle, frame: pl.DataFrame, price: ActiveInstance | None) -> dict[str, Any]:
    if frame.height == 0:
        return {"unavailable": "no rows to time predictions on"}
    started = time.perf_counter()
    try:
        candidate.predict(frame, unseen_categories="unknown")
    except Exception as e:  # the gate already judged this; evidence only notes it
        return {"unavailable": f"the candidate failed to predict: {type(e).__name__}"}
    latency_us = (time.perf_counter() - started) * 1e6 / frame.height
    out: dict[str, Any] = {"latency_us_per_row": round(latency_us, 3), "rows_timed": frame.height}
    if price is not None:
        from shipyard.cost.attribution import cpu_share_usd

        # 1,000 predictions * latency_us microseconds = latency_us CPU milliseconds.
        per_thousand = cpu_share_usd(latency_us, price.instance, price.hourly) / 1000
        out["per_thousand_usd"] = str(per_thousand.quantize(_EXP))
        out["instance"] = price.instance.name
    return out


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so the JSON is strict everywhere."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def workspace_price(settings: Settings) -> ActiveInstance | None:
    """The workspace's priced instance, or None when its cost settings name none that exists."""
    from shipyard.cost.catalog import active_instance, catalog_for

    try:
        return active_instance(settings, catalog_for(settings))
    except ShipyardError:
        return None
