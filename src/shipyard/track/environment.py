"""What a run records about where it ran: code version, interpreter, packages, host.

Captured once per process (it does not change while the process lives) and stored with every
run, so a result can be traced to the exact code and libraries that produced it.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

#: Packages whose versions change results; recorded when installed.
TRACKED_PACKAGES = (
    "shipyard",
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "imbalanced-learn",
    "optuna",
    "skops",
    "onnxruntime",
    "torch",
    "sqlalchemy",
)
_GIT_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class CodeVersion:
    """The git commit of the working tree and whether it had uncommitted changes."""

    commit: str | None
    dirty: bool | None


@cache
def code_version(directory: str) -> CodeVersion:
    """Return the git commit of ``directory``'s repository, or Nones outside a repository."""
    try:
        commit = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeVersion(None, None)
    return CodeVersion(commit or None, bool(status.strip()))


@cache
def process_environment() -> dict[str, Any]:
    """Return the interpreter, packages and host facts of this process."""
    import psutil  # here, not at import: a workspace that only reads never needs it

    packages: dict[str, str] = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "argv": sys.argv[:32],
        "cwd": os.getcwd(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "packages": packages,
    }


@cache
def host_name() -> str:
    """Return this machine's host name."""
    return socket.gethostname()


@cache
def user_name() -> str:
    """Return the operating-system user running this process."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid-{os.getuid()}"


def process_started_ms(pid: int | None = None) -> int:
    """Return when a process started, in epoch ms: with the pid it identifies a process."""
    import psutil

    return round(psutil.Process(pid).create_time() * 1000)
