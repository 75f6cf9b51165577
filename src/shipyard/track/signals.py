"""SIGTERM and uncaught exceptions, so that runs end with the status that fits.

While a run is active in the main thread, SIGTERM raises ``Terminated`` (a ``SystemExit`` with
code 143) there, so ``with`` blocks unwind, the run is marked ``killed`` and buffered metrics
are written before the process exits. A handler the application installed itself is left alone.
An uncaught exception is remembered so that runs still open at interpreter exit end ``failed``.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from shipyard.core import interrupts

if TYPE_CHECKING:
    from types import FrameType, TracebackType


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM during a run."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


_state: dict[str, Any] = {"installed": False, "terminated": False, "uncaught": None}
_lock = threading.Lock()


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    _state["terminated"] = True
    if interrupts.defer(_raise_terminated):  # inside a store write: raised when it has ended
        return
    raise Terminated


def _raise_terminated() -> None:
    raise Terminated


def install() -> None:
    """Route SIGTERM to ``Terminated`` if nobody else handles it; idempotent."""
    with _lock:
        if _state["installed"] or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
        previous_hook = sys.excepthook

        def _remember(
            exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
        ) -> None:
            _state["uncaught"] = exc
            previous_hook(exc_type, exc, tb)

        sys.excepthook = _remember
        _state["installed"] = True


def was_terminated() -> bool:
    """Tell whether SIGTERM arrived while a run was active."""
    return bool(_state["terminated"])


def uncaught_exception() -> BaseException | None:
    """Return the exception that ended the program, if one did."""
    exc = _state["uncaught"]
    return exc if isinstance(exc, BaseException) else None
