"""``dead_letters``: every failed request and bad record, kept for inspection and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, JSONDoc, UTCDateTime, one_of

LETTER_KINDS = ("request", "record")
LETTER_STATES = ("open", "replayed", "resolved", "discarded")


class DeadLetter(Base):
    """One failure; seeing the same ``dedup_key`` again bumps ``attempts`` instead of a new row.

    ``params`` never holds secrets; ``record`` (the record as received) lives here and nowhere
    else (never in logs).
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        sa.CheckConstraint(one_of("kind", LETTER_KINDS), name="kind"),
        sa.CheckConstraint(one_of("state", LETTER_STATES), name="state"),
        sa.Index(None, "state", "resource", "practice_id"),
        sa.Index(None, "practice_id", "last_failed_at"),
        sa.Index(None, "sync_run_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    resource: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    practice_id: Mapped[str | None] = mapped_column(sa.Text())
    department_id: Mapped[str | None] = mapped_column(sa.Text())
    path: Mapped[str | None] = mapped_column(sa.Text())
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    http_status: Mapped[int | None] = mapped_column(sa.Integer())
    api_error: Mapped[str | None] = mapped_column(sa.Text())
    error_class: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    error_message: Mapped[str | None] = mapped_column(sa.Text())
    record: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    record_id: Mapped[str | None] = mapped_column(sa.Text())
    attempts: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="1")
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    state: Mapped[str] = mapped_column(sa.Text(), nullable=False, server_default="open")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution_note: Mapped[str | None] = mapped_column(sa.Text())
    sync_run_id: Mapped[int | None] = mapped_column(sa.BigInteger())
    task_name: Mapped[str | None] = mapped_column(sa.Text())
    task_args: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc)
    dedup_key: Mapped[str] = mapped_column(sa.Text(), nullable=False, unique=True)

    def __repr__(self) -> str:
        return f"DeadLetter(id={self.id!r}, kind={self.kind!r}, state={self.state!r})"
