"""Alembic migrations of the metadata schema, applied automatically when a store opens."""
