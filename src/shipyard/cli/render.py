"""How the CLI shows times, durations, ids and numbers, and what it prints for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import sys
from typing import Annotated, Any

import typer

from shipyard.core.durations import compact_duration
from shipyard.store.entities import RunStatus

STATUS_STYLE = {
    RunStatus.RUNNING: "cyan",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "yellow",
}


def when(epoch_ms: int | None) -> str:
    """Render epoch ms as local date and time to the second."""
    if epoch_ms is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch_ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """A run's length (``core.durations``: the same text in the CLI and the UI)."""
    return compact_duration(start_ms, end_ms)


def number(value: float | None) -> str:
    """Render a metric value with 4 significant digits."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


def status(value: RunStatus) -> str:
    """Render a status in its colour."""
    return f"[{STATUS_STYLE[value]}]{value.value}[/]"


def size(num_bytes: int | None) -> str:
    """Render a byte count in binary units."""
    if num_bytes is None:
        return "-"
    amount = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


#: ``--json`` on every list and show command: the same facts as the table, for scripts.
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")
]


def jsonable(value: Any) -> Any:
    """Turn ``value`` into plain JSON types, the same way for every command.

    Dataclasses and pydantic models become objects, enums their values, Decimals and paths
    text, and non-finite floats null (JSON has no spelling for them).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)  # Decimal, Path, anything else: its text


def write_json(document: Any, indent: int | None = None) -> None:
    """Write ``document`` as strict JSON on stdout, bypassing rich (no wrapping, no markup)."""
    sys.stdout.write(json.dumps(jsonable(document), allow_nan=False, indent=indent) + "\n")
