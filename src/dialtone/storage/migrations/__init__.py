"""Alembic migration scripts, applied on every start (``Database.migrate``)."""
