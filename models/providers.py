"""``providers``: one row per (practice, canonical athena provider id)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDoc, ResourceColumns


class Provider(ResourceColumns, Base):
    """A provider as served by ``GET /providers?showallproviderids=true``."""

    __tablename__ = "providers"

    practice_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    first_name: Mapped[str | None] = mapped_column(sa.Text())
    last_name: Mapped[str | None] = mapped_column(sa.Text())
    display_name: Mapped[str | None] = mapped_column(sa.Text())
    npi: Mapped[str | None] = mapped_column(sa.Text())
    specialty: Mapped[str | None] = mapped_column(sa.Text())
    specialty_id: Mapped[str | None] = mapped_column(sa.Text())
    ansi_specialty_code: Mapped[str | None] = mapped_column(sa.Text())
    provider_type: Mapped[str | None] = mapped_column(sa.Text())
    provider_type_id: Mapped[str | None] = mapped_column(sa.Text())
    entity_type: Mapped[str | None] = mapped_column(sa.Text())
    billable: Mapped[bool | None] = mapped_column(sa.Boolean())
    scheduling_name: Mapped[str | None] = mapped_column(sa.Text())
    provider_username: Mapped[str | None] = mapped_column(sa.Text())
    home_department: Mapped[str | None] = mapped_column(sa.Text())
    usual_department_id: Mapped[str | None] = mapped_column(sa.Text())
    supervising_provider_id: Mapped[str | None] = mapped_column(sa.Text())
    sex: Mapped[str | None] = mapped_column(sa.Text())
    hide_in_portal: Mapped[bool | None] = mapped_column(sa.Boolean())
    accepting_new_patients: Mapped[bool | None] = mapped_column(sa.Boolean())
    create_encounter_on_check_in: Mapped[bool | None] = mapped_column(sa.Boolean())
    other_provider_ids: Mapped[list[str] | None] = mapped_column(JSONDoc)
    provider_group_ids: Mapped[list[str] | None] = mapped_column(JSONDoc)

    def __repr__(self) -> str:
        return f"Provider(practice_id={self.practice_id!r}, provider_id={self.provider_id!r})"
