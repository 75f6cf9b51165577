"""Cache keys: same inputs + same step code + same parameters = same dataset version.

A step's key hashes, in a canonical JSON form: the step's kind and parameters, the source of the
modules that implement it (so editing the code invalidates the cache), the ids of its input
dataset versions (themselves content hashes), and for sources a fingerprint of what was read.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

KEY_VERSION = 1


@cache
def code_hash(*modules: ModuleType) -> str:
    """Return a SHA-256 over the source text of ``modules`` (in the order given)."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.__name__.encode())
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


def cache_key(
    kind: str, params: Any, *, code: str, inputs: Sequence[str] = (), extra: Any = None
) -> str:
    """Return the cache key of a step run; equal keys mean the output can be reused."""
    document = {
        "v": KEY_VERSION,
        "kind": kind,
        "params": params,
        "code": code,
        "inputs": list(inputs),
        "extra": extra,
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
