"""The audit log: an append-only hash chain of every state change and every raw-PII read.

Each entry says who (actor), what (action, object), when (at_ms), from where (source) and the
outcome, plus a small JSON detail that never holds a secret or a personal value in clear
(erasures carry the subject's keyed digest). Entry ``n`` stores the hash of entry ``n-1``
and its own hash: SHA-256 over the canonical JSON (sorted keys, no spaces, UTF-8) of all its
fields including ``seq`` and ``prev_hash``. So editing an entry breaks its own hash, deleting
one leaves a gap in ``seq``, and reordering breaks both; ``verify`` names the first bad entry.

A chain cannot show that its newest entries were cut off (nothing comes after them). Keep the
head that ``verify`` prints somewhere else (a ticket, a log shipper) and pass it back as an
anchor to prove the log still reaches it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.store.security import GENESIS_HASH, AuditRecord, AuditWrite

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.security.identities import Identity
    from shipyard.store.security import SecurityStore

_LIMITS = {"actor": 200, "action": 64, "object": 500, "source": 200, "outcome": 32}
_HASHED = ("seq", "at_ms", "actor", "action", "object", "source", "outcome", "detail_json")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no spaces and UTF-8 text: one text per value, so one hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(fields: Mapping[str, Any]) -> str:
    """The hash of an entry: SHA-256 of the canonical JSON of its fields and ``prev_hash``."""
    body = {name: fields[name] for name in _HASHED}
    body["prev_hash"] = fields["prev_hash"]
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def draft(
    actor: Identity | str,
    action: str,
    obj: str,
    *,
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
    source: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuditWrite:
    """An entry ready to append (in the caller's transaction, via the security store)."""
    name = actor if isinstance(actor, str) else actor.name
    where = source or (None if isinstance(actor, str) else actor.source) or "unknown"
    texts = {"actor": name, "action": str(action), "object": obj, "source": where}
    values: dict[str, Any] = {k: _clip(v, _LIMITS[k]) for k, v in texts.items()}
    values["outcome"] = _clip(outcome, _LIMITS["outcome"])
    values["at_ms"] = clock.now_ms()
    values["detail_json"] = canonical_json(dict(detail or {}))
    return AuditWrite(values=values, seal=entry_hash)


def record(
    store: SecurityStore,
    actor: Identity | str,
    action: str,
    obj: str,
    *,
    outcome: str = "ok",
    detail: Mapping[str, Any] | None = None,
    source: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> AuditRecord:
    """Append one entry to the audit log; what other packages call after a state change.

    Args:
        store: The workspace's security store.
        actor: Who did it (an identity, or a name for system actors such as ``canary``).
        action: What, as a permission-table action (``models.promote``).
        obj: What it was done to (``churn@production``, ``user:alice``).
        outcome: ``ok``, ``denied``, ``refused``, ``failed``...
        detail: Small JSON context; never secrets or personal values in clear.
        source: Where from (defaults to the identity's source).
        clock: The clock for ``at_ms``.

    Returns:
        The stored entry.
    """
    entry = draft(actor, action, obj, outcome=outcome, detail=detail, source=source, clock=clock)
    return store.append_audit(entry)


@dataclass(frozen=True, slots=True)
class Verification:
    """What ``verify`` found.

    Attributes:
        ok: True when every entry checks out (and the anchor, if given, is there).
        entries: Entries checked.
        first_bad: ``seq`` of the first bad entry (or where one is missing); None when ok.
        problem: What is wrong with it, in words.
        head_seq: ``seq`` of the newest entry (0 for an empty log).
        head_hash: Its hash (the genesis hash for an empty log): keep it as an anchor.
    """

    ok: bool
    entries: int
    first_bad: int | None
    problem: str | None
    head_seq: int
    head_hash: str


def verify(store: SecurityStore, *, anchor: tuple[int, str] | None = None) -> Verification:
    """Walk the chain from the first entry and report the first one that does not check out.

    Args:
        store: The security store to check.
        anchor: ``(seq, hash)`` of an entry seen earlier; the log must still hold it unchanged.
    """
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    anchor_seen = anchor is None
    for entry in store.iter_audit():
        problem = _problem(entry, expected_seq, prev)
        if problem is not None:
            bad = expected_seq if entry.seq != expected_seq else entry.seq
            return Verification(False, count, bad, problem, expected_seq - 1, prev)
        if anchor is not None and entry.seq == anchor[0]:
            if entry.entry_hash != anchor[1]:
                return Verification(
                    False,
                    count,
                    entry.seq,
                    f"entry {entry.seq} no longer has the anchored hash",
                    entry.seq,
                    entry.entry_hash,
                )
            anchor_seen = True
        count += 1
        expected_seq, prev = entry.seq + 1, entry.entry_hash
    if not anchor_seen and anchor is not None:
        return Verification(
            False,
            count,
            anchor[0],
            f"entry {anchor[0]} of the anchor is gone: the newest entries were removed",
            expected_seq - 1,
            prev,
        )
    return Verification(True, count, None, None, expected_seq - 1, prev)


def _problem(entry: AuditRecord, expected_seq: int, prev: str) -> str | None:
    if entry.seq != expected_seq:
        return (
            f"entry {expected_seq} is missing (the next entry is {entry.seq}): "
            "entries were removed or renumbered"
        )
    if entry.entry_hash != entry_hash(_fields(entry)):
        return f"entry {entry.seq} was changed after it was written (its hash does not match)"
    if entry.prev_hash != prev:
        return (
            f"entry {entry.seq} does not follow entry {entry.seq - 1} (previous hash differs): "
            "an entry before it was changed, removed or moved"
        )
    return None


def _fields(entry: AuditRecord) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in (*_HASHED, "prev_hash")}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
