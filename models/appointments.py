"""``appointments``: one row per (practice, appointment id), cancelled ones included."""

from __future__ import annotations

from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, ResourceColumns, UTCDateTime


class Appointment(ResourceColumns, Base):
    """A booked (or cancelled) appointment from ``GET /appointments/booked?showcancelled=true``.

    ``start_at`` is ``local_date`` + ``local_time`` in ``timezone_name`` (the department's zone)
    as an instant; the ``*_at`` audit times arrive zoneless and are read as US/Eastern.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        sa.Index(None, "practice_id", "department_id", "local_date"),
        sa.Index(None, "practice_id", "last_modified_at"),
        sa.Index(None, "practice_id", "patient_id"),
        sa.Index(None, "practice_id", "provider_id", "start_at"),
    )

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    appointment_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    department_id: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    provider_id: Mapped[str | None] = mapped_column(sa.Text())
    patient_id: Mapped[str | None] = mapped_column(sa.Text())
    appointment_type_id: Mapped[str | None] = mapped_column(sa.Text())
    appointment_type_name: Mapped[str | None] = mapped_column(sa.Text())
    patient_appointment_type_name: Mapped[str | None] = mapped_column(sa.Text())
    status: Mapped[str | None] = mapped_column(sa.Text())
    start_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    local_date: Mapped[date] = mapped_column(sa.Date(), nullable=False)
    local_time: Mapped[time] = mapped_column(sa.Time(), nullable=False)
    timezone_name: Mapped[str] = mapped_column(sa.Text(), nullable=False)
    duration_minutes: Mapped[int | None] = mapped_column(sa.Integer())
    last_modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_modified_by: Mapped[str | None] = mapped_column(sa.Text())
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_by: Mapped[str | None] = mapped_column(sa.Text())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(sa.Text())
    cancel_reason: Mapped[str | None] = mapped_column(sa.Text())
    cancel_reason_id: Mapped[str | None] = mapped_column(sa.Text())
    cancel_reason_no_show: Mapped[bool | None] = mapped_column(sa.Boolean())
    rescheduled_appointment_id: Mapped[str | None] = mapped_column(sa.Text())
    encounter_id: Mapped[str | None] = mapped_column(sa.Text())
    checkin_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checkout_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    template_appointment_id: Mapped[str | None] = mapped_column(sa.Text())
    template_appointment_type_id: Mapped[str | None] = mapped_column(sa.Text())
    hl7_provider_id: Mapped[str | None] = mapped_column(sa.Text())
    rendering_provider_id: Mapped[str | None] = mapped_column(sa.Text())

    def __repr__(self) -> str:
        return (
            f"Appointment(practice_id={self.practice_id!r}, appointment_id={self.appointment_id!r})"
        )
