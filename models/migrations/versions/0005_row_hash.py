"""row_hash on every resource table: the upsert's change test compares one value (issue 16).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

On Postgres existing rows are backfilled in SQL with the very expression the write path uses
(``hash_record_extended`` over the row's mapped columns and ``raw``, see
``worker.store.staging``), so the first sync after the upgrade writes nothing for rows that did
not change. The lists below are this revision's columns, frozen here on purpose: a later
migration that adds a column recomputes the hash the same way. SQLite keeps NULL (its upsert
compares every column). A NULL or stale hash is harmless: that row is rewritten once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HASHED: dict[str, list[str]] = {
    "providers": [
        "first_name",
        "last_name",
        "display_name",
        "npi",
        "specialty",
        "specialty_id",
        "ansi_specialty_code",
        "provider_type",
        "provider_type_id",
        "entity_type",
        "billable",
        "scheduling_name",
        "provider_username",
        "home_department",
        "usual_department_id",
        "supervising_provider_id",
        "sex",
        "hide_in_portal",
        "accepting_new_patients",
        "create_encounter_on_check_in",
        "other_provider_ids",
        "provider_group_ids",
        "raw",
    ],
    "departments": [
        "name",
        "patient_department_name",
        "timezone_name",
        "does_not_observe_dst",
        "timezone_offset",
        "address",
        "address2",
        "city",
        "state",
        "zip",
        "phone",
        "fax",
        "hidden",
        "provider_group_id",
        "provider_group_name",
        "chart_sharing_group_id",
        "place_of_service_type_id",
        "place_of_service_type_name",
        "service_department",
        "is_hospital_department",
        "clinicals",
        "latitude",
        "longitude",
        "provider_ids",
        "raw",
    ],
    "appointment_types": [
        "name",
        "short_name",
        "duration_minutes",
        "generic",
        "patient",
        "template_type_only",
        "patient_display_name",
        "create_encounter_on_check_in",
        "raw",
    ],
    "appointments": [
        "department_id",
        "provider_id",
        "patient_id",
        "appointment_type_id",
        "appointment_type_name",
        "patient_appointment_type_name",
        "status",
        "start_at",
        "local_date",
        "local_time",
        "timezone_name",
        "duration_minutes",
        "last_modified_at",
        "last_modified_by",
        "scheduled_at",
        "scheduled_by",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
        "cancel_reason_id",
        "cancel_reason_no_show",
        "rescheduled_appointment_id",
        "encounter_id",
        "checkin_at",
        "checkout_at",
        "template_appointment_id",
        "template_appointment_type_id",
        "hl7_provider_id",
        "rendering_provider_id",
        "raw",
    ],
}


def upgrade() -> None:
    for table, columns in HASHED.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("row_hash", sa.BigInteger(), nullable=True))
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"UPDATE {table} SET row_hash = hash_record_extended(ROW({', '.join(columns)}), 0)"
            )


def downgrade() -> None:
    for table in HASHED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("row_hash")
