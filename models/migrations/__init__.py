"""Alembic migrations for athena-sync (run through ``worker.db.upgrade``)."""
