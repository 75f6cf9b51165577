"""Rows for security (users, tokens, role bindings, audit chain, data keys).

Rows of the same ``Base`` as ``shipyard.store.models`` (imported at its bottom so
``Base.metadata`` holds them); created by migration ``0005_security``.
"""

from __future__ import annotations

from shipyard.store.models import Base  # noqa: F401 - tables land here
