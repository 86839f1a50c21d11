"""``departments``: one row per (practice, department id), portal-hidden ones included."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDoc, ResourceColumns


class Department(ResourceColumns, Base):
    """A department as served by ``GET /departments?showalldepartments=true``.

    ``hidden`` is True/False when the sync compared the full listing with the default one (which
    omits portal-hidden departments) and NULL when that was not known.
    """

    __tablename__ = "departments"

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    department_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.Text())
    patient_department_name: Mapped[str | None] = mapped_column(sa.Text())
    timezone_name: Mapped[str | None] = mapped_column(sa.Text())
    does_not_observe_dst: Mapped[bool | None] = mapped_column(sa.Boolean())
    timezone_offset: Mapped[int | None] = mapped_column(sa.Integer())
    address: Mapped[str | None] = mapped_column(sa.Text())
    address2: Mapped[str | None] = mapped_column(sa.Text())
    city: Mapped[str | None] = mapped_column(sa.Text())
    state: Mapped[str | None] = mapped_column(sa.Text())
    zip: Mapped[str | None] = mapped_column(sa.Text())
    phone: Mapped[str | None] = mapped_column(sa.Text())
    fax: Mapped[str | None] = mapped_column(sa.Text())
    hidden: Mapped[bool | None] = mapped_column(sa.Boolean())
    provider_group_id: Mapped[str | None] = mapped_column(sa.Text())
    provider_group_name: Mapped[str | None] = mapped_column(sa.Text())
    chart_sharing_group_id: Mapped[str | None] = mapped_column(sa.Text())
    place_of_service_type_id: Mapped[str | None] = mapped_column(sa.Text())
    place_of_service_type_name: Mapped[str | None] = mapped_column(sa.Text())
    service_department: Mapped[bool | None] = mapped_column(sa.Boolean())
    is_hospital_department: Mapped[bool | None] = mapped_column(sa.Boolean())
    clinicals: Mapped[str | None] = mapped_column(sa.Text())
    latitude: Mapped[float | None] = mapped_column(sa.Float())
    longitude: Mapped[float | None] = mapped_column(sa.Float())
    provider_ids: Mapped[list[str] | None] = mapped_column(JSONDoc)

    def __repr__(self) -> str:
        return f"Department(practice_id={self.practice_id!r}, department_id={self.department_id!r})"
