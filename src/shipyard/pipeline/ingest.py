"""Read one source for a pipeline run.

It returns the new rows, the lines that could not be read, the new watermark, the harmonized
schema, and a fingerprint for cache keys.

The delta a run reads (everything, or only rows past the last watermark) is materialized once
here, so it can be counted, fingerprinted and validated without reading the source again; its
raw watermark column is read before harmonization renames or casts anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.data.dtypes import type_name
from shipyard.data.harmonize import harmonize

if TYPE_CHECKING:
    import polars as pl

    from shipyard.data.connectors.base import Connector, SourceSpec
    from shipyard.data.harmonize import HarmonizeSpec
    from shipyard.store.datasets import SourceSnapshot


@dataclass(frozen=True)
class SourceRead:
    """What one run read from one source."""

    name: str
    frame: pl.LazyFrame
    rows: int
    rejected: pl.DataFrame
    watermark: Any
    schema: list[dict[str, str]]
    fingerprint: str
    warnings: tuple[str, ...] = ()

    @property
    def rejected_rows(self) -> int:
        """Lines the connector could not parse (they go to quarantine)."""
        return self.rejected.height


def read_source(
    connector: Connector,
    spec: SourceSpec,
    harmonize_spec: HarmonizeSpec,
    previous: SourceSnapshot | None,
) -> SourceRead:
    """Read the source's new rows and harmonize them (lazily, over the materialized delta)."""
    since = previous.watermark if (previous is not None and spec.watermark) else None
    raw = connector.scan(since).collect()
    rejected = connector.rejected()
    watermark = previous.watermark if previous is not None else None
    if spec.watermark and raw.height:
        watermark = _json_value(raw.get_column(spec.watermark).max())
    result = harmonize(
        raw.lazy(),
        harmonize_spec,
        source=spec.name,
        on_schema_drift=spec.on_schema_drift,
        count=False,
    )
    schema = [
        {"name": name, "type": type_name(dtype)}
        for name, dtype in result.frame.collect_schema().items()
        if not name.startswith("_")
    ]
    return SourceRead(
        name=spec.name,
        frame=result.frame,
        rows=raw.height,
        rejected=rejected,
        watermark=watermark,
        schema=schema,
        fingerprint=_fingerprint(raw, rejected),
        warnings=result.report.warnings,
    )


def _fingerprint(raw: pl.DataFrame, rejected: pl.DataFrame) -> str:
    digest = hashlib.sha256()
    for frame in (raw, rejected):
        buffer = io.BytesIO()
        frame.write_ipc(buffer, compression="uncompressed")
        digest.update(buffer.getvalue())
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    return value
