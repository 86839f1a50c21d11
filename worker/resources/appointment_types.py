"""Appointment types: ``GET /appointmenttypes?hidenonpatient=false`` into ``appointment_types``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from models import AppointmentType
from worker.jsonsafe import json_safe
from worker.parse import parse_bool, parse_duration, parse_id, parse_str
from worker.resources.base import Resource, ensure_object, pick, tolerant

TEXT = {"name": "name", "short_name": "shortname", "patient_display_name": "patientdisplayname"}
FLAGS = {
    "generic": "generic",
    "patient": "patient",
    "template_type_only": "templatetypeonly",
    "create_encounter_on_check_in": "createencounteroncheckin",
}


class AppointmentTypeRow(TypedDict):
    """A row of ``appointment_types`` as ``to_row`` returns it (the bookkeeping columns are the
    upsert's)."""

    practice_id: str
    appointment_type_id: str
    name: str | None
    short_name: str | None
    duration_minutes: int | None
    generic: bool | None
    patient: bool | None
    template_type_only: bool | None
    patient_display_name: str | None
    create_encounter_on_check_in: bool | None
    raw: Any


def to_row(record: Mapping[str, Any], *, practice_id: str, **_context: Any) -> AppointmentTypeRow:
    """Map one appointment type record to an ``appointment_types`` row."""
    rec = ensure_object(record)
    return cast(
        AppointmentTypeRow,
        {
            "practice_id": practice_id,
            "appointment_type_id": parse_id(rec.get("appointmenttypeid"), "appointmenttypeid"),
            **pick(rec, parse_str, TEXT, lenient=True),
            "duration_minutes": tolerant(parse_duration)(rec.get("duration"), "duration"),
            **pick(rec, parse_bool, FLAGS, lenient=True),
            "raw": json_safe(record),  # NaN as "NaN", a lone surrogate as U+FFFD: storable
        },
    )


# hidenonpatient defaults to true upstream, which would hide non-patient types from a listing
# that must be complete before vanished rows are marked deleted.
RESOURCE = Resource(
    name="appointment-types",
    path="/appointmenttypes",
    collection="appointmenttypes",
    id_field="appointmenttypeid",
    model=AppointmentType,
    to_row=to_row,
    key_column="appointment_type_id",
    params={"hidenonpatient": "false"},
)
