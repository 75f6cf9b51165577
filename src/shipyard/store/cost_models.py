"""Rows for cost (budgets, serving meters).

Rows of the same ``Base`` as ``shipyard.store.models`` (imported at its bottom so
``Base.metadata`` holds them); created by migration ``0006_cost``.
"""

from __future__ import annotations

from shipyard.store.models import Base  # noqa: F401 - tables land here
