"""A server process's place in its life: starting, serving, draining (issue 20).

Readiness is what a load balancer asks before sending traffic, so it must turn off *before* the
server stops accepting connections (RELIABILITY lesson 7: readiness off → stop accepting →
drain in-flight → flush logs → exit). uvicorn stops accepting as soon as it sees SIGTERM; a
``Lifecycle`` with ``drain_s > 0`` steps in front of uvicorn's own handler: the first SIGTERM
only turns readiness off, and uvicorn's graceful shutdown starts ``drain_s`` seconds later,
once the balancer's health checks have taken the replica out. Requests keep being answered
meanwhile. A second SIGTERM (or SIGINT) shuts down at once.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    from types import FrameType

log = logging.getLogger("shipyard.serve")


class Lifecycle:
    """Whether this process is draining, and the SIGTERM hook that starts the drain."""

    def __init__(self, *, drain_s: float = 0.0) -> None:
        """Keep the drain time; nothing is hooked until :meth:`install`.

        Args:
            drain_s: Seconds between the first SIGTERM and the start of uvicorn's graceful
                shutdown, during which readiness answers 503 but requests are served.
        """
        self.drain_s = drain_s
        self.draining = False
        self._previous: Any = None
        self._installed = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put the drain in front of the current SIGTERM handler (uvicorn's), if it helps.

        Only from the main thread (where signal handlers live) and only with a drain time:
        without one, uvicorn's handler stays as it is.
        """
        if self.drain_s <= 0 or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return

        def on_term(sig: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: no more waiting
                previous(sig, frame)
                return
            self.draining = True
            log.warning("SIGTERM: readiness off; shutting down in %.1f s", self.drain_s)
            loop.call_soon_threadsafe(loop.call_later, self.drain_s, previous, sig, None)

        self._previous = previous
        signal.signal(signal.SIGTERM, on_term)
        self._installed = True

    def uninstall(self) -> None:
        """Give SIGTERM back to the handler that was there before :meth:`install`."""
        if self._installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
