"""How long a run took, said compactly: the CLI's tables and the web UI show the same text."""

from __future__ import annotations


def compact_duration(start_ms: int | None, end_ms: int | None) -> str:
    """``5.2s``, ``3m 04s`` or ``1h 02m``; ``-`` while either end is unknown."""
    if start_ms is None or end_ms is None:
        return "-"
    seconds = max(0.0, (end_ms - start_ms) / 1000)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
