"""A metric's history cut down on the database side: min and max per step bucket.

A chart 1,000 pixels wide cannot show 100,000 points, and sending them all costs the server
the rows, the JSON and the browser's memory. The web UI asks for ``buckets`` equal-width step
ranges instead and gets, for each, its first step, the lowest and highest value and how many
points fell in it: drawn as a min and a max line, spikes stay visible (a mean would hide
them). The grouping runs in SQL (one pass over the ``(run_id, key, step)`` index range), so
only the buckets leave the database. Integer division of steps behaves the same on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.store.models import MetricRow

if TYPE_CHECKING:
    from shipyard.store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class Bucket:
    """One step range of a metric: its first step, extreme values and point count.

    ``low``/``high`` are NaN when every value in the bucket was NaN (stored as NULL).
    """

    step: int
    low: float
    high: float
    count: int


@dataclass(frozen=True, slots=True)
class Downsampled:
    """A metric's history as buckets, and whether they are single points (no cut)."""

    key: str
    total: int
    exact: bool
    buckets: list[Bucket]


def metric_buckets(store: SqlStore, run_id: str, key: str, buckets: int) -> Downsampled:
    """Return ``run_id``'s ``key`` history as at most ``buckets`` min/max buckets.

    When the metric has no more points than ``buckets`` every point is its own bucket
    (``exact``), ordered by step; several values at one step are then one bucket too.
    """
    buckets = max(1, buckets)
    where = (MetricRow.run_id == run_id, MetricRow.key == key)
    with store.engine.connect() as connection:
        lo, hi, total = connection.execute(
            sa.select(
                sa.func.min(MetricRow.step), sa.func.max(MetricRow.step), sa.func.count()
            ).where(*where)
        ).one()
        if not total:
            return Downsampled(key, 0, True, [])
        span = int(hi) - int(lo) + 1
        width = 1 if total <= buckets else max(1, math.ceil(span / buckets))
        # ``//`` is integer division on both dialects (FLOOR on PostgreSQL).
        index = (MetricRow.step - int(lo)) // width if width > 1 else MetricRow.step
        rows = connection.execute(
            sa.select(
                sa.func.min(MetricRow.step),
                sa.func.min(MetricRow.value),
                sa.func.max(MetricRow.value),
                sa.func.count(),
            )
            .where(*where)
            .group_by(index)
            .order_by(sa.func.min(MetricRow.step))
        ).all()
    return Downsampled(
        key,
        int(total),
        width == 1,
        [
            Bucket(
                int(step),
                math.nan if low is None else float(low),
                math.nan if high is None else float(high),
                int(count),
            )
            for step, low, high, count in rows
        ],
    )
