"""The dialect-specific INSERT that supports ON CONFLICT (Postgres and SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, model: Any) -> Any:
    """``INSERT`` into a mapped class or Table for the session's dialect, with ON CONFLICT."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return postgresql.insert(model)
    if bind.dialect.name == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {bind.dialect.name!r}")
