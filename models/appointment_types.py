"""``appointment_types``: one row per (practice, appointment type id)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, ResourceColumns


class AppointmentType(ResourceColumns, Base):
    """An appointment type as served by ``GET /appointmenttypes?hidenonpatient=false``."""

    __tablename__ = "appointment_types"

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    appointment_type_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text())
    short_name: Mapped[str | None] = mapped_column(sa.Text())
    duration_minutes: Mapped[int | None] = mapped_column(sa.Integer())
    generic: Mapped[bool | None] = mapped_column(sa.Boolean())
    patient: Mapped[bool | None] = mapped_column(sa.Boolean())
    template_type_only: Mapped[bool | None] = mapped_column(sa.Boolean())
    patient_display_name: Mapped[str | None] = mapped_column(sa.Text())
    create_encounter_on_check_in: Mapped[bool | None] = mapped_column(sa.Boolean())

    def __repr__(self) -> str:
        return (
            f"AppointmentType(practice_id={self.practice_id!r}, "
            f"appointment_type_id={self.appointment_type_id!r})"
        )
