"""``sync_state``: watermarks, one per (practice, resource, scope)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class SyncState(Base):
    """A resumable position, e.g. the last ``lastmodified`` seen for one department.

    ``scope`` narrows the resource: the department id for appointments, ``''`` when the watermark
    covers the whole practice.
    """

    __tablename__ = "sync_state"

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    resource: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    scope: Mapped[str] = mapped_column(sa.Text(), primary_key=True, default="")
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    last_run_id: Mapped[int | None] = mapped_column(sa.BigInteger())

    def __repr__(self) -> str:
        return (
            f"SyncState(practice_id={self.practice_id!r}, resource={self.resource!r}, "
            f"scope={self.scope!r})"
        )
