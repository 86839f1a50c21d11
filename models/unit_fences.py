"""``unit_fences``: the highest lease fencing token that has written for each unit of work."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class UnitFence(Base):
    """A write for a unit carries its lease's token; a lower token than the stored one is a
    holder whose lease expired and was taken over, and its write is refused."""

    __tablename__ = "unit_fences"

    unit_key: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    token: Mapped[int] = mapped_column(sa.BigInteger(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)

    def __repr__(self) -> str:
        return f"UnitFence(unit_key={self.unit_key!r}, token={self.token!r})"
