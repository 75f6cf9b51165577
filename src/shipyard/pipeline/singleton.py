"""Singleton work under a lease: the monitor loop and its retrains run on one process (issue 20).

Start ``shipyard monitor run`` on every replica and exactly one of them runs passes: the one
holding the lease ``monitor:<model>@<alias>`` (``store.leases``). The others stand by and
ask again every quarter of the lease time, so when the leader dies one of them takes over at
most ``ttl + ttl/4`` after the leader's last renewal, and runs its first pass at once. A pass
that outlives the lease does not act on it: the retrain checks the lease again just before
it starts (``guarded``), so a leader that stalled past its expiry (a long GC pause, a frozen
VM) never retrains on top of its successor.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.store.leases import Leadership

T = TypeVar("T")


def monitor_lease_name(model: str, alias: str) -> str:
    """The lease a monitor loop of ``model@alias`` holds while it leads."""
    return f"monitor:{model}@{alias}"


def lead_forever(
    step: Callable[[], object],
    leadership: Leadership,
    interval_s: float,
    *,
    on_change: Callable[[bool], None] = lambda _: None,
    passes: int | None = None,
) -> None:
    """Call ``step`` every ``interval_s`` seconds while ``leadership`` is held.

    ``leadership`` must be started (it renews from its own thread). A newly won lease runs
    a pass at once; a lost one stops the passes until it is won again.

    Args:
        step: One pass.
        leadership: The lease this loop leads under.
        interval_s: Seconds between the starts of two passes.
        on_change: Told ``True`` when this process starts leading, ``False`` when it stops.
        passes: Stop after this many passes (tests); None runs until interrupted.
    """
    leading: bool | None = None  # the first turn says which it is
    last, done = 0.0, 0
    while passes is None or done < passes:
        now_leading = leadership.held
        if now_leading != leading:
            leading = now_leading
            on_change(leading)
            last = 0.0  # a new leader does not wait out an interval
        if leading and (last == 0.0 or time.monotonic() - last >= interval_s):
            last = time.monotonic()
            step()
            done += 1
            continue
        wait = leadership.ttl_ms / 4000
        if leading:
            wait = min(wait, max(0.0, interval_s - (time.monotonic() - last)))
        leadership.wait_changed(wait)


def guarded(leadership: Leadership, work: Callable[[], T], skipped: Callable[[], T]) -> T:
    """Run ``work`` only if the lease is still held (renewed first); else ``skipped()``."""
    if leadership.try_acquire():
        return work()
    return skipped()
