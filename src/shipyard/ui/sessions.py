"""Browser sessions of the web UI: a random cookie id, the signed-in identity and a CSRF token.

Users have no passwords in Shipyard: they sign in with an API token (``shipyard tokens
create``), checked by ``security.accounts`` exactly as the CLI and the model server check it.
The session lives in this process's memory only; the cookie holds 256 random bits and nothing
else, so it can be neither forged nor read. The token stays on the server beside the session
and is checked again at most every ``recheck_s`` seconds, so a revoked token, a disabled user
or a changed role takes effect on open sessions within that time, as on the model server.

Every session, anonymous ones (the sign-in page) included, holds a CSRF token that each
state-changing request must echo (a header or a form field); signing in starts a fresh session
(new id, new CSRF token), so a session id planted before sign-in is worth nothing after it.
One process keeps the sessions: ``shipyard ui`` runs one worker (docs/ui.md).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shipyard.core.clock import SYSTEM_CLOCK, Clock
from shipyard.security.identities import AuthenticationFailed

if TYPE_CHECKING:
    from shipyard.security.accounts import Accounts
    from shipyard.security.identities import Identity

COOKIE = "shipyard_session"
_MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    """One browser's session: anonymous until ``identity`` is set by signing in."""

    sid: str
    csrf: str
    identity: Identity | None
    token: str | None
    checked_ms: int
    last_ms: int


class Sessions:
    """The sessions of one UI process, bounded, expiring after ``idle_s`` without a request."""

    def __init__(
        self,
        accounts: Accounts,
        *,
        project: str,
        idle_s: float = 8 * 3600,
        recheck_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.accounts = accounts
        self.project = project
        self.idle_ms = round(idle_s * 1000)
        self.recheck_ms = round(recheck_s * 1000)
        self.clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        # Anonymous sessions are kept apart, so a flood of sign-in page loads evicts only
        # other anonymous sessions, never a signed-in one.
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def new(self) -> Session:
        """Start an anonymous session (the sign-in page's CSRF token lives in it)."""
        now = self.clock.now_ms()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), None, None, 0, now)
        self._put(session)
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session of cookie value ``sid``; None when unknown or expired."""
        if not sid:
            return None
        now = self.clock.now_ms()
        with self._lock:
            table = self._sessions if sid in self._sessions else self._anonymous
            session = table.get(sid)
            if session is None:
                return None
            if now - session.last_ms > self.idle_ms:
                del table[sid]
                return None
            session = replace(session, last_ms=now)
            table[sid] = session
            table.move_to_end(sid)
            return session

    def sign_in(self, old: Session | None, token: str, source: str) -> Session:
        """Check ``token`` and start a fresh signed-in session (the old one is dropped).

        Raises:
            AuthenticationFailed: The token is not valid for this project.
        """
        identity = self.accounts.authenticate(token, project=self.project, source=source)
        if old is not None:
            self.drop(old.sid)
        now = self.clock.now_ms()
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), identity, token, now, now
        )
        self._put(session)
        return session

    def identity(self, session: Session) -> Identity | None:
        """The session's identity, its token re-checked when the last check is stale.

        A token that stopped authenticating ends the session (None).
        """
        if session.identity is None or session.token is None:
            return None
        now = self.clock.now_ms()
        if now - session.checked_ms < self.recheck_ms:
            return session.identity
        try:
            identity = self.accounts.authenticate(
                session.token, project=self.project, source=session.identity.source
            )
        except AuthenticationFailed:
            self.drop(session.sid)
            return None
        with self._lock:
            if session.sid in self._sessions:
                self._sessions[session.sid] = replace(
                    self._sessions[session.sid], identity=identity, checked_ms=now
                )
        return identity

    def drop(self, sid: str) -> None:
        """End a session (signing out)."""
        with self._lock:
            self._sessions.pop(sid, None)
            self._anonymous.pop(sid, None)

    def _put(self, session: Session) -> None:
        table = self._anonymous if session.identity is None else self._sessions
        with self._lock:
            while len(table) >= _MAX_SESSIONS:  # oldest-used first
                table.popitem(last=False)
            table[session.sid] = session
