"""Alembic environment: always run on a connection handed in by ``shipyard.store.migrate``.

The caller already holds a transaction and a lock (SQLite ``BEGIN IMMEDIATE`` or a PostgreSQL
advisory lock), so two processes opening a new store at once migrate it exactly once.
"""

from __future__ import annotations

from alembic import context

from shipyard.store.models import full_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("shipyard migrations run only through shipyard.store.migrate")

context.configure(
    connection=connection,
    target_metadata=full_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
