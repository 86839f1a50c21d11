"""row_hash without the volatile fields of ``raw``: reading an appointment through the
changed-data feed (which adds ``appointmentnotes``) and then through ``/appointments/booked``
(which does not) is no change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

The write path now hashes ``raw - 'appointmentnotes'`` in place of ``raw`` for appointments
(``Resource.volatile_fields``, see ``worker.store.staging.hash_sql``). A row whose ``raw`` lacks
those keys hashes the same either way, so only rows holding one are recomputed, with the very
expression the write path uses; the first sync after the upgrade writes nothing for them. The
lists below are this revision's, frozen here on purpose (self-contained, as 0005). SQLite keeps
NULL hashes (its upsert compares the columns, ``raw`` without those keys). Downgrading puts the
0005 expression back on the same rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VOLATILE: dict[str, tuple[str, ...]] = {"appointments": ("appointmentnotes",)}
HASHED: dict[str, list[str]] = {
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


def _rehash(*, without_volatile: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in HASHED.items():
        keys = VOLATILE[table]
        dropped = "".join(f" - '{key}'" for key in keys)
        hashed = [f"(raw{dropped})" if c == "raw" and without_volatile else c for c in columns]
        holding = " OR ".join(f"raw ? '{key}'" for key in keys)
        op.execute(
            f"UPDATE {table} SET row_hash = hash_record_extended(ROW({', '.join(hashed)}), 0)"
            f" WHERE {holding}"
        )


def upgrade() -> None:
    _rehash(without_volatile=True)


def downgrade() -> None:
    _rehash(without_volatile=False)
