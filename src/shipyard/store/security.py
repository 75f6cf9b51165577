"""Security rows over the metadata store: users, tokens, role bindings and the audit chain.

Knows nothing of roles or hashing rules: the security package decides, this module keeps the
two promises only a database can keep. Every change to users, tokens or roles is written in
the same transaction as its audit entry. Audit appends are serialized so the chain never
forks: on SQLite the write transaction already holds the database's write lock
(``BEGIN IMMEDIATE``), on PostgreSQL a transaction-scoped advisory lock is taken first; the
next ``seq`` and the previous hash are read under that lock, and ``seq`` being the primary key
turns any race that slipped through into a retry rather than a fork.

How an entry is sealed (which key, which MAC) is the ``AuditSealer``'s business, given to the
store by the security package: the store hands it each entry's fields under the lock and tells
it, after the commit, which entry became the head (so it can anchor the head outside the
database). A store without a sealer cannot exist, so no code path writes unsealed entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from shipyard.core.errors import (
    AlreadyExists,
    Conflict,
    IntegrityFailure,
    NotFound,
    StoreUnavailable,
)
from shipyard.store.engine import run_write
from shipyard.store.security_models import AuditRow, RoleBindingRow, TokenRow, UserRow

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from shipyard.store.sql import SqlStore

#: Key of the PostgreSQL advisory lock that serializes audit appends ("SHPYAUDT").
AUDIT_LOCK_KEY = 0x5348505941554454
GENESIS_HASH = "0" * 64
_APPEND_ATTEMPTS = 20


class AuditLogMissing(IntegrityFailure):
    """The audit log's table is gone from the metadata store (dropped, or a wrong database)."""

    code = "audit_log_missing"


@dataclass(frozen=True, slots=True)
class AuditWrite:
    """An audit entry to append: its fields, before ``seq``, ``prev_hash`` and the seal."""

    values: Mapping[str, Any]


class AuditSealer(Protocol):
    """Seals audit entries (``shipyard.security.audit_chain.AuditChain`` is the one in use)."""

    def seal(self, fields: Mapping[str, Any], prev_key_id: str | None) -> tuple[str | None, str]:
        """Return ``(key_id, entry_hash)`` for an entry following one sealed by ``prev_key_id``.

        ``fields`` hold the entry's values, ``seq`` and ``prev_hash``. Raises (and so rolls the
        transaction back) when this process may not append to the chain, e.g. without its key.
        """
        ...

    def expected(self, fields: Mapping[str, Any]) -> str | None:
        """Return the seal a stored entry with these fields (``key_id`` included) must carry.

        None when it names a key this process does not hold; raises when it holds none.
        """
        ...

    def committed(self, entry: AuditRecord, lookup: Callable[[int], AuditRecord | None]) -> None:
        """Learn that ``entry`` is committed as the head; ``lookup`` reads an entry by ``seq``."""
        ...


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user or service account."""

    name: str
    kind: str
    created_ms: int
    created_by: str
    disabled_ms: int | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token (its hash, never the token)."""

    token_id: str
    user_name: str
    token_sha256: str
    description: str | None
    created_ms: int
    created_by: str
    expires_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """The role a user holds in a project."""

    user_name: str
    project: str
    role: str
    granted_ms: int
    granted_by: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored audit entry, exactly as written."""

    seq: int
    at_ms: int
    actor: str
    action: str
    object: str
    source: str
    outcome: str
    detail_json: str
    prev_hash: str
    entry_hash: str
    key_id: str | None = None


class SecurityStore:
    """Users, tokens, role bindings and the audit log of one metadata store.

    Attributes:
        engine: The metadata store's engine (the store's own: nothing above it uses it).
        sealer: Seals every audit entry this store appends (and anchors the head).
    """

    def __init__(self, store: SqlStore, sealer: AuditSealer) -> None:
        self.engine = store.engine
        self.sealer = sealer
        self._local = threading.local()  # the entries the current thread's write appended

    # -- users ------------------------------------------------------------------------------

    def create_user(self, values: Mapping[str, Any], audit: AuditWrite) -> UserRecord:
        """Insert a user and its audit entry.

        Raises:
            AlreadyExists: A user of that name exists.
        """

        def _create(c: sa.Connection) -> None:
            if c.execute(sa.select(UserRow.name).where(UserRow.name == values["name"])).first():
                raise AlreadyExists(f"user {values['name']!r} already exists")
            c.execute(sa.insert(UserRow), {"disabled_ms": None, **values})
            self._append(c, audit)

        self._write(_create, f"user {values['name']!r} already exists")
        found = self.get_user(values["name"])
        assert found is not None
        return found

    def get_user(self, name: str) -> UserRecord | None:
        """The user called ``name``, or None."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(UserRow).where(UserRow.name == name)).first()
        return None if row is None else UserRecord(*_values(row, UserRecord))

    def list_users(self) -> list[UserRecord]:
        """Every user and service account, by name."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(UserRow).order_by(UserRow.name)).all()
        return [UserRecord(*_values(r, UserRecord)) for r in rows]

    def disable_user(self, name: str, at_ms: int, audit: AuditWrite) -> None:
        """Disable a user (its tokens stop working); recorded with its audit entry.

        Raises:
            NotFound: No such user.
        """

        def _disable(c: sa.Connection) -> None:
            done = c.execute(
                sa.update(UserRow).where(UserRow.name == name).values(disabled_ms=at_ms)
            )
            if done.rowcount != 1:
                raise NotFound(f"no user named {name!r}; `shipyard users list` shows them")
            self._append(c, audit)

        self._write(_disable, "concurrent change")

    # -- tokens -----------------------------------------------------------------------------

    def create_token(self, values: Mapping[str, Any], audit: AuditWrite) -> None:
        """Insert a token row (hash only) and its audit entry.

        Raises:
            NotFound: The user does not exist.
        """

        def _create(c: sa.Connection) -> None:
            if not c.execute(
                sa.select(UserRow.name).where(UserRow.name == values["user_name"])
            ).first():
                raise NotFound(f"no user named {values['user_name']!r}; create it first")
            c.execute(sa.insert(TokenRow), {"revoked_ms": None, **values})
            self._append(c, audit)

        self._write(_create, "token id collision; try again")

    def get_token(self, token_id: str) -> tuple[TokenRecord, UserRecord] | None:
        """A token and its user, or None."""
        with self.engine.connect() as c:
            token = c.execute(sa.select(TokenRow).where(TokenRow.token_id == token_id)).first()
            if token is None:
                return None
            user = c.execute(sa.select(UserRow).where(UserRow.name == token.user_name)).one()
        return TokenRecord(*_values(token, TokenRecord)), UserRecord(*_values(user, UserRecord))

    def list_tokens(self, user_name: str | None = None) -> list[TokenRecord]:
        """Tokens (of one user if given), oldest first."""
        query = sa.select(TokenRow).order_by(TokenRow.created_ms, TokenRow.token_id)
        if user_name is not None:
            query = query.where(TokenRow.user_name == user_name)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
        return [TokenRecord(*_values(r, TokenRecord)) for r in rows]

    def revoke_token(self, token_id: str, at_ms: int, audit: AuditWrite) -> None:
        """Revoke a token (idempotent: a revoked token keeps its first revocation time).

        Raises:
            NotFound: No such token.
        """

        def _revoke(c: sa.Connection) -> None:
            found = c.execute(
                sa.select(TokenRow.revoked_ms).where(TokenRow.token_id == token_id)
            ).first()
            if found is None:
                raise NotFound(f"no token {token_id!r}; `shipyard tokens list` shows them")
            if found.revoked_ms is None:
                c.execute(
                    sa.update(TokenRow)
                    .where(TokenRow.token_id == token_id)
                    .values(revoked_ms=at_ms)
                )
            self._append(c, audit)

        self._write(_revoke, "concurrent change")

    def count_usable_tokens(self, now_ms: int) -> int:
        """Tokens neither revoked nor expired, of users not disabled."""
        with self.engine.connect() as c:
            return int(
                c.execute(
                    sa.select(sa.func.count())
                    .select_from(TokenRow)
                    .join(UserRow, UserRow.name == TokenRow.user_name)
                    .where(
                        TokenRow.revoked_ms.is_(None),
                        UserRow.disabled_ms.is_(None),
                        sa.or_(TokenRow.expires_ms.is_(None), TokenRow.expires_ms > now_ms),
                    )
                ).scalar_one()
            )

    # -- roles ------------------------------------------------------------------------------

    def set_role(self, values: Mapping[str, Any], audit: AuditWrite) -> None:
        """Give a user its one role in a project (replacing any other), with the audit entry.

        Raises:
            NotFound: The user does not exist.
        """

        def _set(c: sa.Connection) -> None:
            if not c.execute(
                sa.select(UserRow.name).where(UserRow.name == values["user_name"])
            ).first():
                raise NotFound(f"no user named {values['user_name']!r}; create it first")
            c.execute(
                sa.delete(RoleBindingRow).where(
                    RoleBindingRow.user_name == values["user_name"],
                    RoleBindingRow.project == values["project"],
                )
            )
            c.execute(sa.insert(RoleBindingRow), dict(values))
            self._append(c, audit)

        self._write(_set, "concurrent role change; try again")

    def remove_role(self, user_name: str, project: str, audit: AuditWrite) -> None:
        """Take a user's role in a project away, with the audit entry.

        Raises:
            NotFound: The user holds no role there.
        """

        def _remove(c: sa.Connection) -> None:
            done = c.execute(
                sa.delete(RoleBindingRow).where(
                    RoleBindingRow.user_name == user_name, RoleBindingRow.project == project
                )
            )
            if done.rowcount != 1:
                raise NotFound(f"{user_name!r} holds no role in project {project!r}")
            self._append(c, audit)

        self._write(_remove, "concurrent role change; try again")

    def role_of(self, user_name: str, project: str) -> str | None:
        """The role ``user_name`` holds in ``project``, or None."""
        with self.engine.connect() as c:
            return c.execute(
                sa.select(RoleBindingRow.role).where(
                    RoleBindingRow.user_name == user_name, RoleBindingRow.project == project
                )
            ).scalar()

    def list_roles(self, project: str | None = None) -> list[RoleBinding]:
        """Role bindings (of one project if given), by project and user."""
        query = sa.select(RoleBindingRow).order_by(RoleBindingRow.project, RoleBindingRow.user_name)
        if project is not None:
            query = query.where(RoleBindingRow.project == project)
        with self.engine.connect() as c:
            rows = c.execute(query).all()
        return [RoleBinding(*_values(r, RoleBinding)) for r in rows]

    # -- audit ------------------------------------------------------------------------------

    def append_audit(self, audit: AuditWrite) -> AuditRecord:
        """Append one audit entry on its own (for changes made elsewhere); return it."""
        written: AuditRecord = self._write(
            lambda c: self._append(c, audit), "audit chain kept colliding"
        )
        return written

    def append_within(self, c: sa.Connection, audit: AuditWrite) -> AuditRecord:
        """Append ``audit`` inside another store's write transaction.

        The change and its entry commit together; hand the record to ``anchor`` once that
        transaction has committed.
        """
        return append_audit(c, audit, self.sealer)

    def anchor(self, entry: AuditRecord) -> None:
        """Anchor a committed entry written with ``append_within`` (as ``_write`` does)."""
        self.sealer.committed(entry, self.get_audit)

    def get_audit(self, seq: int) -> AuditRecord | None:
        """The entry numbered ``seq``, or None.

        Raises:
            AuditLogMissing: The audit table is gone.
        """
        with self._audit_read() as c:
            row = c.execute(sa.select(AuditRow).where(AuditRow.seq == seq)).first()
        return None if row is None else AuditRecord(*_values(row, AuditRecord))

    def iter_audit(self, batch: int = 1000) -> Iterator[AuditRecord]:
        """Every audit entry in ``seq`` order, read in batches (memory stays flat).

        Raises:
            AuditLogMissing: The audit table is gone.
        """
        after = -1
        while True:
            with self._audit_read() as c:
                rows = c.execute(
                    sa.select(AuditRow)
                    .where(AuditRow.seq > after)
                    .order_by(AuditRow.seq)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                yield AuditRecord(*_values(r, AuditRecord))
            after = rows[-1].seq

    def list_audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        object_prefix: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """The newest ``limit`` entries matching every filter given, oldest first.

        Raises:
            AuditLogMissing: The audit table is gone.
        """
        query = sa.select(AuditRow)
        if actor is not None:
            query = query.where(AuditRow.actor == actor)
        if action is not None:
            query = query.where(AuditRow.action == action)
        if object_prefix is not None:
            escaped = object_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditRow.object.like(f"{escaped}%", escape="\\"))
        if since_ms is not None:
            query = query.where(AuditRow.at_ms >= since_ms)
        if until_ms is not None:
            query = query.where(AuditRow.at_ms < until_ms)
        with self._audit_read() as c:
            rows = c.execute(query.order_by(AuditRow.seq.desc()).limit(limit)).all()
        return [AuditRecord(*_values(r, AuditRecord)) for r in reversed(rows)]

    @contextlib.contextmanager
    def _audit_read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as c:
                yield c
        except DBAPIError as e:
            self._raise_if_missing(e)
            raise
        except StoreUnavailable as e:  # run_write/engine already translated the driver error
            if isinstance(e.__cause__, DBAPIError):
                self._raise_if_missing(e.__cause__)
            raise

    def _raise_if_missing(self, error: DBAPIError) -> None:
        if isinstance(error, IntegrityError):
            return
        try:
            present = sa.inspect(self.engine).has_table(AuditRow.__tablename__)
        except DBAPIError:
            return  # the store itself is unreachable: the original error says so
        if not present:
            raise AuditLogMissing(
                f"the audit log table {AuditRow.__tablename__!r} is missing from the metadata "
                "store (dropped, or this is not the workspace's database): restore it from a "
                "backup; `shipyard audit verify` compares what is left with the anchor"
            ) from error

    def _append(self, c: sa.Connection, audit: AuditWrite) -> AuditRecord:
        record = append_audit(c, audit, self.sealer)
        self._local.appended.append(record)
        return record

    def _write(self, work: Callable[[sa.Connection], Any], conflict: str) -> Any:
        def attempt(c: sa.Connection) -> Any:
            self._local.appended = []  # run_write may repeat the work after a failed attempt
            return work(c)

        for _ in range(_APPEND_ATTEMPTS):
            try:
                result = run_write(self.engine, attempt)
            except IntegrityError:
                continue  # another writer took this seq (or id) first: start again
            except DBAPIError as e:
                self._raise_if_missing(e)
                raise
            except StoreUnavailable as e:  # a missing table reads as an outage to the engine
                if isinstance(e.__cause__, DBAPIError):
                    self._raise_if_missing(e.__cause__)
                raise
            for entry in self._local.appended:
                self.sealer.committed(entry, self.get_audit)
            return result
        raise Conflict(conflict)


def append_audit(c: sa.Connection, audit: AuditWrite, sealer: AuditSealer) -> AuditRecord:
    """Append ``audit`` inside the caller's write transaction, after the chain's last entry."""
    if c.dialect.name == "postgresql":
        c.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    last = c.execute(
        sa.select(AuditRow.seq, AuditRow.entry_hash, AuditRow.key_id)
        .order_by(AuditRow.seq.desc())
        .limit(1)
    ).first()
    fields = {
        **audit.values,
        "seq": 1 if last is None else int(last.seq) + 1,
        "prev_hash": GENESIS_HASH if last is None else last.entry_hash,
    }
    key_id, sealed = sealer.seal(fields, None if last is None else last.key_id)
    row = {**fields, "entry_hash": sealed, "key_id": key_id}
    c.execute(sa.insert(AuditRow), row)
    return AuditRecord(**row)


def _values(row: Any, entity: Any) -> list[Any]:
    return [getattr(row, f.name) for f in dataclasses.fields(entity)]
