"""``source_state``: how each practice's resource can be read, kept between runs."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, one_of

SUBSCRIPTION_STATES = ("active", "partial", "none")


class SourceState(Base):
    """One practice's resource: its changed-data subscription as last seen, a destructive feed
    read not yet committed, and whether the multi-department listing was refused or last shown
    to answer for several departments.

    ``feed_pending_since`` is the API's clock (aware UTC) when a destructive read began that
    has not committed: set (and committed) before the read, cleared in the transaction that
    commits what it served. A value left there is a read that may have been lost; the next run
    reads that span again (``showprocessed…``) before anything else.
    """

    __tablename__ = "source_state"
    __table_args__ = (
        sa.CheckConstraint(one_of("subscription", SUBSCRIPTION_STATES), name="subscription"),
    )

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    subscription: Mapped[str | None] = mapped_column(sa.Text())
    subscription_detail: Mapped[str | None] = mapped_column(sa.Text())
    subscription_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    subscribe_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feed_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feed_pending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    feed_pending_run_id: Mapped[int | None] = mapped_column(sa.BigInteger())
    server_offset_seconds: Mapped[float | None] = mapped_column(sa.Float())
    multi_department_refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    multi_department_refusal: Mapped[str | None] = mapped_column(sa.Text())
    # When one answer of the multi-department listing last showed records of two or more
    # departments: the evidence that it answers for every department asked (0007).
    multi_department_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    def __repr__(self) -> str:
        return f"SourceState(practice_id={self.practice_id!r}, resource={self.resource!r})"
