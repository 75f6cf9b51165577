"""Hold a graceful-stop signal back until the store's current write transaction has ended.

SIGTERM raises ``Terminated`` in the main thread wherever it happens to be (``track/signals``).
Raised inside a driver call that is writing (sqlite3's ``executemany``, psycopg's ``COPY``), it
leaves that statement half-run on a connection still held by the exception's traceback: SQLite
keeps its write lock, and the write that ends the run ``killed`` then waits on the process's own
lock until the busy timeout. So a write transaction is *shielded*: a stop that arrives inside one
is remembered and raised the moment the transaction has committed or rolled back. A transaction
is short and bounded by the busy timeout, so the stop is late by at most that.

This module is in ``core`` because the store (which shields) sits below ``track`` (which owns the
signal handler) and neither may import the other's side of it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class _Shield:
    """The main thread's open shielded blocks and the stop held back for their end."""

    depth = 0
    pending: Callable[[], None] | None = None


_shield = _Shield()


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Defer a stop that arrives in the block (main thread only) to the block's end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _shield.depth += 1
    try:
        yield
    finally:
        _shield.depth -= 1
        pending = _shield.pending
        if _shield.depth == 0 and pending is not None:
            _shield.pending = None
            pending()


def defer(stop: Callable[[], None]) -> bool:
    """Keep ``stop`` for the end of the current shielded block; False when none is open."""
    if _shield.depth == 0 or threading.current_thread() is not threading.main_thread():
        return False
    _shield.pending = stop
    return True
