"""How the CLI shows times, durations, ids and numbers."""

from __future__ import annotations

import datetime as dt
import math

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


def duration(start_ms: int, end_ms: int | None) -> str:
    """Render the time between two instants compactly (``1m 05s``)."""
    if end_ms is None:
        return "-"
    seconds = max(0.0, (end_ms - start_ms) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


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
