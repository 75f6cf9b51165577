"""Canary counts and verdicts shared by every replica of a deployment (issue 20).

Each replica routes its own share of the traffic to a canary; judged alone, each sees a third
(with three replicas) of the evidence and decides on its own, so a failing canary would be
rolled back, and audited, once per replica, and a replica that had not yet seen enough errors
would keep sending traffic to it. Here the replicas add their counts to one row and read the
totals back, and the verdict is written once: the first replica to decide wins (``decide``
says whether the caller won, and only the winner records the audit entry or moves the alias);
the others read it on their next poll and stop routing to the canary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.lease_models import CanaryRow

if TYPE_CHECKING:
    from shipyard.core.clock import Clock
    from shipyard.store.sql import SqlStore

__all__ = ["CanaryStore", "SharedCanary"]


@dataclass(frozen=True)
class SharedCanary:
    """A canary as every replica sees it: total traffic, errors, and the verdict if any."""

    key: str
    requests: int
    errors: int
    verdict: str | None = None
    reason: str | None = None


class CanaryStore:
    """Canary rows in the metadata store."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def add(self, key: str, requests: int, errors: int) -> SharedCanary:
        """Add one replica's new counts to ``key`` and return the totals (and any verdict)."""
        engine = self.store.engine

        def _add(c: sa.Connection) -> SharedCanary:
            c.execute(
                upsert_insert(engine, CanaryRow)
                .values(key=key, requests=0, errors=0)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            if requests or errors:
                c.execute(
                    sa.update(CanaryRow)
                    .where(CanaryRow.key == key)
                    .values(
                        requests=CanaryRow.requests + requests, errors=CanaryRow.errors + errors
                    )
                )
            return _read(c, key)

        return run_write(engine, _add)

    def decide(self, key: str, verdict: str, reason: str) -> tuple[SharedCanary, bool]:
        """Write ``verdict`` unless one is there; return the canary and whether it was ours."""
        engine = self.store.engine

        def _decide(c: sa.Connection) -> tuple[SharedCanary, bool]:
            c.execute(
                upsert_insert(engine, CanaryRow)
                .values(key=key, requests=0, errors=0)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            won = c.execute(
                sa.update(CanaryRow)
                .where(CanaryRow.key == key, CanaryRow.verdict.is_(None))
                .values(verdict=verdict, reason=reason[:500], decided_ms=self.clock.now_ms())
            ).rowcount
            return _read(c, key), bool(won)

        return run_write(engine, _decide)


def _read(c: sa.Connection, key: str) -> SharedCanary:
    row = c.execute(sa.select(CanaryRow).where(CanaryRow.key == key)).one()
    return SharedCanary(row.key, row.requests, row.errors, row.verdict, row.reason)
