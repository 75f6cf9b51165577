"""Leases: exactly one process at a time runs a singleton job (issue 20).

The monitor loop, the retraining it triggers and blob GC must not run twice at once when
several replicas (or two operators) start them: two loops would retrain twice on one drift
event, two collectors would race on the same blobs. A lease is a row in the metadata store
(``leases``), so it works the same on SQLite and PostgreSQL and needs no other service:
whoever holds it until ``expires_ms`` is the leader; it renews well before then; when it dies
the row simply expires and the next process to ask takes it over, with ``token`` one higher
(a fencing number: a holder that stalled past its expiry sees a higher token and knows).

Every read-compare-write runs in one write transaction (``run_write``: SQLite's ``BEGIN
IMMEDIATE`` serializes writers; on PostgreSQL the row is locked ``FOR UPDATE`` and a race on
the first insert is settled by the primary key), and time comes from an injectable clock, so
tests step through expiry without sleeping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from shipyard.core.errors import InvalidArgument, ShipyardError
from shipyard.store.engine import run_write, upsert_insert
from shipyard.store.lease_models import LeaseRow

if TYPE_CHECKING:
    from shipyard.core.clock import Clock
    from shipyard.store.sql import SqlStore

__all__ = ["Leadership", "Lease", "LeaseStore", "holder_id"]

log = logging.getLogger("shipyard.leases")


def holder_id() -> str:
    """A name for this process that no other process shares: host, pid and a random part."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """A lease as stored: who holds it, until when, and how often it changed hands."""

    name: str
    holder: str
    token: int
    acquired_ms: int
    expires_ms: int

    def held_by(self, holder: str, now_ms: int) -> bool:
        """Whether ``holder`` holds it at ``now_ms``."""
        return self.holder == holder and now_ms < self.expires_ms


class LeaseStore:
    """Named leases in the metadata store."""

    def __init__(self, store: SqlStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def acquire(self, name: str, holder: str, ttl_ms: int) -> Lease:
        """Take or renew ``name`` for ``ttl_ms`` if it is free, expired or already ours.

        Returns the lease as it stands after the attempt: ``lease.held_by(holder, now)`` says
        whether the caller holds it (otherwise it names who does, and until when).

        Raises:
            InvalidArgument: A non-positive ``ttl_ms`` or an empty name or holder.
            StoreUnavailable: The store could not be reached.
        """
        if ttl_ms <= 0 or not name or not holder:
            raise InvalidArgument("a lease needs a name, a holder and a positive time to live")
        engine = self.store.engine

        def _acquire(c: sa.Connection) -> Lease:
            now = self.clock.now_ms()
            current = _read(c, name, for_update=True)
            if current is None:
                inserted = c.execute(
                    upsert_insert(engine, LeaseRow)
                    .values(
                        name=name, holder=holder, token=1, acquired_ms=now, expires_ms=now + ttl_ms
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                if inserted.rowcount == 1:
                    return Lease(name, holder, 1, now, now + ttl_ms)
                current = _read(c, name, for_update=True)  # another process inserted first
                if current is None:  # pragma: no cover - inserted and gone within a transaction
                    raise ShipyardError(f"lease {name!r} vanished while being taken")
            if current.holder == holder:
                fresh = Lease(name, holder, current.token, current.acquired_ms, now + ttl_ms)
            elif current.expires_ms <= now:
                fresh = Lease(name, holder, current.token + 1, now, now + ttl_ms)
            else:
                return current
            c.execute(
                sa.update(LeaseRow)
                .where(LeaseRow.name == name)
                .values(
                    holder=fresh.holder,
                    token=fresh.token,
                    acquired_ms=fresh.acquired_ms,
                    expires_ms=fresh.expires_ms,
                )
            )
            return fresh

        return run_write(engine, _acquire)

    def release(self, name: str, holder: str) -> bool:
        """Let ``name`` go now if ``holder`` holds it (the next asker need not wait it out)."""

        def _release(c: sa.Connection) -> bool:
            done = c.execute(
                sa.update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder)
                .values(expires_ms=self.clock.now_ms())
            )
            return bool(done.rowcount)

        return run_write(self.store.engine, _release)

    def current(self, name: str) -> Lease | None:
        """The lease ``name`` as stored (expired or not), or None if never taken."""
        with self.store.engine.connect() as c:
            return _read(c, name, for_update=False)


def _read(c: sa.Connection, name: str, *, for_update: bool) -> Lease | None:
    query = sa.select(LeaseRow).where(LeaseRow.name == name)
    if for_update and c.dialect.name == "postgresql":
        query = query.with_for_update()
    row = c.execute(query).first()
    if row is None:
        return None
    return Lease(row.name, row.holder, row.token, row.acquired_ms, row.expires_ms)


class Leadership:
    """Hold a lease for as long as possible, renewing it from a background thread.

    ``held`` says, at any moment, whether this process may do the singleton work; it turns
    false as soon as a renewal fails or finds another holder, so work checked against it
    stops within one renewal period of losing the lease. A standby asks as often as the
    leader renews, so it takes over at most ``ttl + ttl/4`` after the leader's last renewal.
    """

    def __init__(
        self, leases: LeaseStore, name: str, *, ttl_ms: int, holder: str | None = None
    ) -> None:
        self.leases = leases
        self.name = name
        self.ttl_ms = ttl_ms
        self.holder = holder or holder_id()
        self.lease: Lease | None = None
        self._held_until_ms = 0
        self._stop = threading.Event()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lease now (by the last renewal and the clock)."""
        return self.leases.clock.now_ms() < self._held_until_ms

    def try_acquire(self) -> bool:
        """Take or renew the lease once; return whether it is held."""
        try:
            lease = self.leases.acquire(self.name, self.holder, self.ttl_ms)
        except ShipyardError as e:  # an unreachable store: not the leader until it answers
            log.warning("lease %s: could not renew (%s)", self.name, e)
            self._held_until_ms = 0
            return False
        was_held = self.held
        now = self.leases.clock.now_ms()
        self.lease = lease
        self._held_until_ms = lease.expires_ms if lease.held_by(self.holder, now) else 0
        if self.held != was_held:
            self._changed.set()
        return self.held

    def wait_changed(self, timeout_s: float) -> bool:
        """Block until leadership is gained or lost, or ``timeout_s``; return whether it was."""
        changed = self._changed.wait(timeout_s)
        self._changed.clear()
        return changed

    def start(self) -> Leadership:
        """Ask once now, then keep asking every ``ttl/4`` from a daemon thread."""
        self.try_acquire()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 4000):
            self.try_acquire()

    def stop(self) -> None:
        """Stop renewing and release the lease if held (a standby takes over at once)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.held:
            try:
                self.leases.release(self.name, self.holder)
            except ShipyardError as e:  # it expires by itself
                log.warning("lease %s: could not release (%s)", self.name, e)
        self._held_until_ms = 0

    def __enter__(self) -> Leadership:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
