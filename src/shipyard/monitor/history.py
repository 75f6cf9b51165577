"""Observations over time: what every monitor measured, stored so reports can plot it.

Monitors emit ``Observation`` values; this module checks them once (names within the column
limits, a known kind, a window that ends after it starts) and writes a batch all-or-nothing
through ``store.monitoring``. Reads come back as ``Observation`` values, or as a Polars frame
for plotting a drift or performance series.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, get_args

import polars as pl

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.core.errors import InvalidArgument
from shipyard.monitor.signals import Observation, ObservationKind
from shipyard.store.monitoring import MonitoringStore, json_safe

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shipyard.store.monitoring import StoredObservation

__all__ = ["SERIES_SCHEMA", "ObservationHistory"]

_KINDS = frozenset(get_args(ObservationKind))
_LIMITS = {"model": 100, "statistic": 64, "subject": 200, "variant": 100}

SERIES_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "version": pl.Int64(),
    "variant": pl.String(),
    "kind": pl.String(),
    "statistic": pl.String(),
    "subject": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "breached": pl.Boolean(),
    "window_start_ms": pl.Int64(),
    "window_end_ms": pl.Int64(),
}
"""Columns of :meth:`ObservationHistory.frame`, one row per observation."""


class ObservationHistory:
    """Record and query the observation time series of a workspace's store."""

    def __init__(self, store: MonitoringStore, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock

    def record(self, observations: Iterable[Observation]) -> int:
        """Store ``observations`` (all or none); return how many were stored.

        Raises:
            InvalidArgument: One of them is malformed; the message says which and why.
        """
        items = list(observations)
        for i, obs in enumerate(items):
            check_observation(obs, where=f"observation {i}")
        now = self.clock.now_ms()
        return self.store.add_observations(
            [
                {
                    "model": o.model,
                    "version": o.version,
                    "variant": o.variant,
                    "kind": o.kind,
                    "statistic": o.statistic,
                    "subject": o.subject,
                    "value": o.value,
                    "window_start_ms": o.window_start_ms,
                    "window_end_ms": o.window_end_ms,
                    "threshold": o.threshold,
                    "breached": o.breached,
                    "detail": json_safe(o.detail),
                    "recorded_ms": now,
                }
                for o in items
            ]
        )

    def query(
        self,
        *,
        model: str | None = None,
        kind: str | None = None,
        statistic: str | None = None,
        subject: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int | None = None,
    ) -> list[Observation]:
        """Stored observations matching every given filter, oldest window first.

        ``since_ms <= window_end_ms < until_ms``; ``limit`` keeps the newest rows.
        """
        found = self.store.observations(
            model=model,
            kind=kind,
            statistic=statistic,
            subject=subject,
            since_ms=since_ms,
            until_ms=until_ms,
            limit=limit,
        )
        return [_to_observation(s) for s in found]

    def frame(
        self,
        *,
        model: str | None = None,
        kind: str | None = None,
        statistic: str | None = None,
        subject: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> pl.DataFrame:
        """The same rows as :meth:`query`, as a frame with :data:`SERIES_SCHEMA` (for plots)."""
        rows = self.query(
            model=model,
            kind=kind,
            statistic=statistic,
            subject=subject,
            since_ms=since_ms,
            until_ms=until_ms,
        )
        return pl.DataFrame(
            [{name: getattr(o, name) for name in SERIES_SCHEMA} for o in rows],
            schema=SERIES_SCHEMA,
            orient="row",
        )


def check_observation(obs: Observation, *, where: str = "observation") -> None:
    """Refuse an observation the store cannot hold faithfully.

    Raises:
        InvalidArgument: Names the field and the problem.
    """
    if obs.kind not in _KINDS:
        raise InvalidArgument(
            f"{where}: kind {obs.kind!r} is not one of {', '.join(sorted(_KINDS))}"
        )
    for name, limit in _LIMITS.items():
        text = getattr(obs, name)
        if name == "variant" and text is None:
            continue
        if not isinstance(text, str) or not text or len(text) > limit:
            raise InvalidArgument(f"{where}: {name} must be 1 to {limit} characters")
    if obs.window_end_ms < obs.window_start_ms:
        raise InvalidArgument(f"{where}: window ends ({obs.window_end_ms}) before it starts")
    if isinstance(obs.value, bool) or not isinstance(obs.value, int | float):
        raise InvalidArgument(f"{where}: value must be a number, got {type(obs.value).__name__}")
    if obs.threshold is not None and not math.isfinite(obs.threshold):
        raise InvalidArgument(f"{where}: threshold must be finite or None")


def _to_observation(s: StoredObservation) -> Observation:
    return Observation(
        model=s.model,
        version=s.version,
        kind=s.kind,  # type: ignore[arg-type]  # only known kinds are ever written
        statistic=s.statistic,
        subject=s.subject,
        value=s.value,
        window_start_ms=s.window_start_ms,
        window_end_ms=s.window_end_ms,
        threshold=s.threshold,
        breached=s.breached,
        variant=s.variant,
        detail=s.detail,
    )
