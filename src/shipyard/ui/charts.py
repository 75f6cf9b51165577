"""Chart data as JSON for the browser: a metric's history cut to min/max buckets.

The server never sends more than ``MAX_BUCKETS`` buckets per series (the store groups the
points in SQL, ``store.metric_buckets``); the browser draws them with uPlot
(static/charts.js). NaN values travel as ``null`` (a gap in the line), since JSON has no NaN.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from shipyard.store.metric_buckets import metric_buckets

if TYPE_CHECKING:
    from shipyard.store.sql import SqlStore

DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 4000


def bucket_count(text: str | None) -> int:
    """The number of buckets asked for, clamped to 1..MAX_BUCKETS (default 1,000)."""
    try:
        asked = int(text) if text else DEFAULT_BUCKETS
    except ValueError:
        asked = DEFAULT_BUCKETS
    return min(MAX_BUCKETS, max(1, asked))


def metric_series(store: SqlStore, run_id: str, key: str, buckets: int) -> dict[str, Any]:
    """One run's metric as ``{key, total, exact, steps, low, high}`` (parallel arrays)."""
    cut = metric_buckets(store, run_id, key, buckets)
    return {
        "key": key,
        "total": cut.total,
        "exact": cut.exact,
        "steps": [b.step for b in cut.buckets],
        "low": [_finite(b.low) for b in cut.buckets],
        "high": [_finite(b.high) for b in cut.buckets],
    }


def dumps(document: Any) -> bytes:
    """Compact JSON (no NaN tokens: ``allow_nan`` off catches any that slipped through)."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value
