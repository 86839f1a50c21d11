"""``sync_runs``: one row per unit of work (resource x practice [x department x window]).

``mode`` ``changed`` is a read of the practice's changed-data feed (``department_id`` NULL: it
covers every department)."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigIntPK, UTCDateTime, one_of

RUN_MODES = ("full", "incremental", "reconcile", "changed")
RUN_STATUSES = ("running", "succeeded", "partial", "failed", "skipped")


class SyncRun(Base):
    """Progress and outcome of one unit of sync work; ``run_group`` ties one invocation together."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        sa.CheckConstraint(one_of("mode", RUN_MODES), name="mode"),
        sa.CheckConstraint(one_of("status", RUN_STATUSES), name="status"),
        sa.Index(None, "practice_id", "resource", "started_at"),
        sa.Index(None, "run_group"),
        sa.Index(None, "status"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    run_group: Mapped[str | None] = mapped_column(sa.Text())
    resource: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    practice_id: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    department_id: Mapped[str | None] = mapped_column(sa.Text())
    window_start: Mapped[date | None] = mapped_column(sa.Date())
    window_end: Mapped[date | None] = mapped_column(sa.Date())
    mode: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    status: Mapped[str] = mapped_column(sa.Text(), nullable=False, server_default="running")
    fetched: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    inserted: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    updated: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    unchanged: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    deleted: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    dead_lettered: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    api_calls: Mapped[int] = mapped_column(sa.Integer(), nullable=False, server_default="0")
    # A complete read that could not mark deletions (the listing moved while it was read, or
    # rows it did not see were written by another sync meanwhile): see worker.sync.job.
    deletions_deferred: Mapped[bool] = mapped_column(
        sa.Boolean(), nullable=False, server_default=sa.false()
    )
    # A changed-feed read that stopped at its page budget with changes still waiting: not a read
    # of everything up to its start (freshness leaves it out), see worker.sync.read.feed.
    more_waiting: Mapped[bool] = mapped_column(
        sa.Boolean(), nullable=False, server_default=sa.false()
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error_summary: Mapped[str | None] = mapped_column(sa.Text())
    task_id: Mapped[str | None] = mapped_column(sa.Text())

    def __repr__(self) -> str:
        return f"SyncRun(id={self.id!r}, resource={self.resource!r}, status={self.status!r})"
