"""Cache keys: same inputs + same step code + same parameters = same dataset version.

A step's key hashes, in a canonical JSON form: the step's kind and parameters, its code hash
(``pipeline.code_hash``: the source of every module the stage imports and the versions of the
libraries they use, so editing the code invalidates the cache), and the ids of its input
dataset versions (themselves content hashes). ``pipeline.stage.execute`` computes it for every
stage.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

KEY_VERSION = 1


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
