"""What a service below the entry points needs: the metadata store, the blob store, a clock.

Issue 15: ``Workspace`` is the context object of ``cli`` and ``pipeline``; the services below
them (datasets, lineage, retention, erasure, budgets, the registry) take only these three. A
``Workspace`` has them, so it is a ``Stores`` (structurally: nothing here imports ``track``);
so is a ``StoreSet`` made from a bare ``SqlStore`` and blob store, without a workspace's
metric writer and heartbeat threads (tests, tools, another process's services).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from shipyard.core.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from shipyard.store.artifacts.base import BlobStore
    from shipyard.store.sql import SqlStore

__all__ = ["StoreSet", "Stores"]


class Stores(Protocol):
    """The metadata store, the blob store and the clock a service reads and writes through."""

    @property
    def store(self) -> SqlStore:
        """The metadata store."""
        ...

    @property
    def blobs(self) -> BlobStore:
        """The content-addressed blob store."""
        ...

    @property
    def clock(self) -> Clock:
        """What "now" is (a ``ManualClock`` in tests)."""
        ...


@dataclass(frozen=True, slots=True)
class StoreSet:
    """``Stores`` without a workspace: a bare ``SqlStore``, a blob store and a clock."""

    store: SqlStore
    blobs: BlobStore
    clock: Clock = SYSTEM_CLOCK
