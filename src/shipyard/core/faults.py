"""Named fault points, inert unless a test arms them through ``SHIPYARD_FAULT``.

Durability code calls ``faults.hit("artifact.after_tmp_write")`` at each step that matters. A
test runs a subprocess with ``SHIPYARD_FAULT=<point>:kill`` (SIGKILL itself there) or
``SHIPYARD_FAULT=<point>:raise:ENOSPC`` (raise ``OSError(ENOSPC)``) and then checks the
invariants of RELIABILITY.md. Several faults are separated by commas. In production the
variable is unset and ``hit`` is one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from functools import cache

ENV_VAR = "SHIPYARD_FAULT"


@cache
def _armed(spec: str) -> dict[str, tuple[str, str]]:
    faults: dict[str, tuple[str, str]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, rest = item.partition(":")
        action, _, arg = rest.partition(":")
        faults[point] = (action or "raise", arg)
    return faults


def hit(point: str) -> None:
    """Trigger the fault armed at ``point``, if any.

    Raises:
        OSError: When the fault is ``raise`` (with the named errno, default EIO).
    """
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    fault = _armed(spec).get(point)
    if fault is None:
        return
    action, arg = fault
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = getattr(errno, arg, errno.EIO) if arg else errno.EIO
    raise OSError(code, f"injected fault at {point}: {os.strerror(code)}")
