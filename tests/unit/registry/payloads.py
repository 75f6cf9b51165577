"""Payloads that create a canary file when deserialized: what an attacker's model file does.

Each payload, if a loader ever constructed or unpickled it, writes the file whose path it carries.
Tests assert that the canary never exists after Shipyard refuses the payload, and (to show the
payload is real) that an unguarded load does create it.
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path

import joblib


def touch(path: str) -> int:
    """Create the canary (the 'code' a payload runs)."""
    Path(path).write_text("payload ran")
    return 0


class Canary:
    """A type whose construction from saved state runs code (as ``__setstate__`` may)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setstate__(self, state: dict[str, str]) -> None:
        touch(state["path"])
        self.__dict__.update(state)


class PickleBomb:
    """Pickles to a call of ``touch``: unpickling it creates the canary."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (touch, (self.path,))


def pickle_payloads(canary: Path) -> dict[str, bytes]:
    """Every pickle flavour of a payload that creates ``canary`` when loaded."""
    bomb = PickleBomb(str(canary))
    out = {f"protocol {p}": pickle.dumps(bomb, protocol=p) for p in range(6)}
    for compress in (0, "zlib", "gzip", "bz2", "lzma", "xz"):
        buffer = io.BytesIO()
        joblib.dump(bomb, buffer, compress=compress if compress == 0 else (compress, 3))
        out[f"joblib {compress}"] = buffer.getvalue()
    out["gzip protocol 0"] = gzip.compress(pickle.dumps(bomb, protocol=0))
    out["truncated protocol 0"] = pickle.dumps(bomb, protocol=0)[:-1]
    try:
        import cloudpickle
    except ImportError:  # not a dependency; covered when installed
        pass
    else:
        out["cloudpickle"] = cloudpickle.dumps(bomb)
        out["cloudpickle lambda"] = cloudpickle.dumps(lambda: __import__("os").getcwd())
    return out
