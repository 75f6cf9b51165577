"""The audit log: an append-only, keyed hash chain of every state change and every raw-PII read.

Each entry says who (actor), what (action, object), when (at_ms), from where (source) and the
outcome, plus a small JSON detail that never holds a secret or a personal value in clear
(erasures carry the subject's keyed digest). Entry ``n`` stores the hash of entry ``n-1`` and
its own seal: HMAC-SHA-256, under the audit key named by its ``key_id``, of the canonical JSON
(sorted keys, no spaces, UTF-8) of all its fields including ``seq``, ``prev_hash`` and
``key_id``. Entries written before keying (``key_id`` NULL) carry a plain SHA-256 of the same
JSON without ``key_id`` and still verify; none may follow a keyed entry.

So editing an entry breaks its seal, and re-sealing needs the key, which is kept apart from the
database (``shipyard.security.audit_chain``); deleting one leaves a gap in ``seq``; reordering
breaks both. A chain cannot show that its newest entries were cut off (nothing comes after
them): the anchor (``shipyard.security.audit_anchor``), kept outside the database and moved
forward as entries are appended, does. ``verify`` names the first bad entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.security.audit_anchor import Anchor
from shipyard.store.security import GENESIS_HASH, AuditLogMissing, AuditRecord, AuditWrite

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
    """The seal of a pre-HMAC entry: SHA-256 of the canonical JSON of its fields, ``prev_hash``."""
    body = {name: fields[name] for name in _HASHED}
    body["prev_hash"] = fields["prev_hash"]
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def entry_mac(fields: Mapping[str, Any], mac_key: bytes) -> str:
    """The seal of a keyed entry: HMAC-SHA-256 of its fields, ``prev_hash`` and ``key_id``."""
    body = {name: fields[name] for name in (*_HASHED, "prev_hash", "key_id")}
    return hmac.new(mac_key, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


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
    return AuditWrite(values=values)


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
        ok: True when every entry checks out and the log still reaches the anchor (if any).
        entries: Entries checked.
        first_bad: ``seq`` of the first bad entry (or where one is missing); None when ok.
        problem: What is wrong with it, in words.
        head_seq: ``seq`` of the newest entry (0 for an empty log).
        head_hash: Its hash (the genesis hash for an empty log).
        anchor_seq: ``seq`` of the anchor checked against; None when there was none.
        warning: What this check could not prove (no anchor), or None.
    """

    ok: bool
    entries: int
    first_bad: int | None
    problem: str | None
    head_seq: int
    head_hash: str
    anchor_seq: int | None = None
    warning: str | None = None


def verify(store: SecurityStore, *, anchor: Anchor | tuple[int, str] | None = None) -> Verification:
    """Walk the chain from the first entry and report the first one that does not check out.

    Args:
        store: The security store to check; its sealer checks each entry's seal.
        anchor: An entry the log reached earlier (the anchor file's, or ``(seq, hash)`` kept by
            hand): the log must still hold it unchanged, so a shorter log is caught.

    Raises:
        InvalidSettings: Keyed entries exist and this process holds no audit key to check them.
    """
    pinned = Anchor(*anchor) if isinstance(anchor, tuple) else anchor
    try:
        result = _walk(store, pinned)
    except AuditLogMissing as e:
        return Verification(False, 0, 1, str(e), 0, GENESIS_HASH, _seq(pinned))
    if pinned is None and result.ok:
        warning = (
            "no anchor to check against: removal of the newest entries (or of the whole log) "
            "cannot be detected; `shipyard audit anchor` writes one"
        )
        return dataclasses.replace(result, warning=warning)
    return result


def _walk(store: SecurityStore, pinned: Anchor | None) -> Verification:
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    keyed_seen = False
    for entry in store.iter_audit():
        problem = _problem(store, entry, expected_seq, prev, keyed_seen=keyed_seen)
        if (
            problem is None
            and pinned is not None
            and entry.seq == pinned.seq
            and entry.entry_hash != pinned.head_hash
        ):
            problem = (
                f"entry {entry.seq} is not the entry the anchor recorded: it was changed "
                "or replaced (entries removed, then new ones appended)"
            )
        if problem is not None:
            bad = expected_seq if entry.seq != expected_seq else entry.seq
            return Verification(False, count, bad, problem, expected_seq - 1, prev, _seq(pinned))
        keyed_seen = keyed_seen or entry.key_id is not None
        count += 1
        expected_seq, prev = entry.seq + 1, entry.entry_hash
    head = expected_seq - 1
    if pinned is not None and head < pinned.seq:
        if count == 0:
            problem = (
                f"the audit log is empty but its anchor says it reached entry {pinned.seq}: "
                "the whole log was deleted"
            )
        else:
            problem = (
                f"the audit log ends at entry {head} but its anchor says it reached entry "
                f"{pinned.seq}: the newest {pinned.seq - head} entries were removed"
            )
        return Verification(False, count, head + 1, problem, head, prev, pinned.seq)
    return Verification(True, count, None, None, head, prev, _seq(pinned))


def _problem(
    store: SecurityStore, entry: AuditRecord, expected_seq: int, prev: str, *, keyed_seen: bool
) -> str | None:
    if entry.seq != expected_seq:
        return (
            f"entry {expected_seq} is missing (the next entry is {entry.seq}): "
            "entries were removed or renumbered"
        )
    if entry.key_id is None and keyed_seen:
        return (
            f"entry {entry.seq} is not keyed but follows keyed entries: it was rewritten by "
            "someone without the audit key"
        )
    expected = store.sealer.expected(_fields(entry))
    if expected is None:
        return (
            f"entry {entry.seq} names audit key {entry.key_id}, not the key this process holds: "
            "it was changed, or this process has the wrong audit key"
        )
    if not hmac.compare_digest(entry.entry_hash, expected):
        return f"entry {entry.seq} was changed after it was written (its seal does not match)"
    if entry.prev_hash != prev:
        return (
            f"entry {entry.seq} does not follow entry {entry.seq - 1} (previous hash differs): "
            "an entry before it was changed, removed or moved"
        )
    return None


def _fields(entry: AuditRecord) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in (*_HASHED, "prev_hash", "key_id")}


def _seq(anchor: Anchor | None) -> int | None:
    return None if anchor is None else anchor.seq


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
