"""Appointments: ``GET /appointments/booked?showcancelled=true`` into ``appointments``; also read
through the changed-data feed ``/appointments/changed`` and, many departments per request,
``/appointments/booked/multipledepartment``.

``date`` + ``starttime`` are wall-clock times in the *department's* zone; the caller passes
``timezones`` (department id -> IANA name, from the ``departments`` table). An appointment whose
department has no known zone is a bad record: guessing a zone would store a wrong instant.
Audit times (``lastmodified``, ``scheduleddatetime``, ``cancelleddatetime``, check-in/out) are
read as US/Eastern (see ``worker.parse``).

The mapper is strict: a record is refused (a dead letter) for a value that cannot be true, not
only for a wrong type: a NaN/Infinity or a lone surrogate anywhere in it, a duration that is
negative or longer than a day, a date or audit time outside the years 1900-2100 (README, "Bad
records").
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any, TypedDict, cast

from models import Appointment
from worker.parse import (
    BadRecord,
    eastern_fast,
    local_to_utc,
    parse_athena_datetime,
    parse_bool,
    parse_date,
    parse_duration,
    parse_hhmm,
    parse_id,
    parse_str,
)
from worker.resources.base import Feed, ReadStrategy, Resource, ensure_object, ensure_storable

IDS = {
    "provider_id": "providerid",
    "patient_id": "patientid",
    "appointment_type_id": "appointmenttypeid",
    "rescheduled_appointment_id": "rescheduledappointmentid",
    "encounter_id": "encounterid",
    "template_appointment_id": "templateappointmentid",
    "template_appointment_type_id": "templateappointmenttypeid",
    "hl7_provider_id": "hl7providerid",
    "rendering_provider_id": "renderingproviderid",
    "cancel_reason_id": "cancelreasonid",
}
TEXT = {
    "appointment_type_name": "appointmenttype",
    "patient_appointment_type_name": "patientappointmenttypename",
    "status": "appointmentstatus",
    "last_modified_by": "lastmodifiedby",
    "scheduled_by": "scheduledby",
    "cancelled_by": "cancelledby",
    "cancel_reason": "cancelreasonname",
}
# Zoneless audit timestamps, read as US/Eastern.
EASTERN_TIMES = {
    "last_modified_at": "lastmodified",
    "scheduled_at": "scheduleddatetime",
    "cancelled_at": "cancelleddatetime",
    "checkin_at": "checkindatetime",
    "checkout_at": "checkoutdatetime",
}


_ID_ITEMS = tuple(IDS.items())
_TEXT_ITEMS = tuple(TEXT.items())
_EASTERN_ITEMS = tuple(EASTERN_TIMES.items())


def _zone_for(department_id: str, timezones: Mapping[str, str], fallback: str | None) -> str:
    zone = timezones.get(department_id) or fallback
    if not zone:
        raise BadRecord("no time zone known for the appointment's department", "departmentid")
    return zone


class AppointmentRow(TypedDict):
    """A row of ``appointments`` as ``to_row`` returns it (the bookkeeping columns are the
    upsert's)."""

    practice_id: str
    appointment_id: str
    department_id: str
    provider_id: str | None
    patient_id: str | None
    appointment_type_id: str | None
    appointment_type_name: str | None
    patient_appointment_type_name: str | None
    status: str | None
    start_at: datetime
    local_date: date
    local_time: time
    timezone_name: str
    duration_minutes: int | None
    last_modified_at: datetime | None
    last_modified_by: str | None
    scheduled_at: datetime | None
    scheduled_by: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    cancel_reason: str | None
    cancel_reason_id: str | None
    cancel_reason_no_show: bool | None
    rescheduled_appointment_id: str | None
    encounter_id: str | None
    checkin_at: datetime | None
    checkout_at: datetime | None
    template_appointment_id: str | None
    template_appointment_type_id: str | None
    hl7_provider_id: str | None
    rendering_provider_id: str | None
    raw: Any


def to_row(
    record: Mapping[str, Any],
    *,
    practice_id: str,
    timezones: Mapping[str, str],
    fallback_zone: str | None = None,
    storable: bool = False,
    **_context: Any,
) -> AppointmentRow:
    """Map one booked/cancelled appointment to an ``appointments`` row. ``storable``: the record
    was read by the strict decoder, which refuses what a database cannot hold (NaN, a lone
    surrogate), so it is not searched for such values again.

    Fields are read in a fixed order (the first bad one is the one reported) straight into the
    row: this runs for every appointment of every sync, so it builds no intermediate dicts.
    """
    checked = ensure_object(record)
    get = (checked if storable else ensure_storable(checked)).get
    appointment_id = parse_id(get("appointmentid"), "appointmentid")
    department_id = parse_id(get("departmentid"), "departmentid")
    row: dict[str, Any] = {
        "practice_id": practice_id,
        "appointment_id": appointment_id,
        "department_id": department_id,
    }
    # Most of these are absent or plain text (non-empty ASCII without surrounding blanks): those
    # skip the parser, which would return them unchanged (written out: 17 times per record).
    for column, key in _ID_ITEMS:
        value = get(key)
        if value is not None and not (
            type(value) is str and value.isascii() and value.strip() == value and value
        ):
            value = parse_id(value, key, required=False)
        row[column] = value
    for column, key in _TEXT_ITEMS:
        value = get(key)
        if value is not None and not (
            type(value) is str and value.isascii() and value.strip() == value and value
        ):
            value = parse_str(value, key)
        row[column] = value
    zone = _zone_for(department_id, timezones, fallback_zone)
    local_date = parse_date(get("date"), "date", required=True)
    local_time = parse_hhmm(get("starttime"), "starttime", required=True)
    row["start_at"] = local_to_utc(local_date, local_time, zone)
    row["local_date"] = local_date
    row["local_time"] = local_time
    row["timezone_name"] = zone
    row["duration_minutes"] = parse_duration(get("duration"), "duration")
    for column, key in _EASTERN_ITEMS:
        value = get(key)
        if value is not None:
            # The common MM/DD/YYYY HH:MM:SS straight to the cached hour; else the parser.
            value = (
                type(value) is str and len(value) == 19 and eastern_fast(value)
            ) or parse_athena_datetime(value, key)
        row[column] = value
    row["cancel_reason_no_show"] = parse_bool(get("cancelreasonnoshow"), "cancelreasonnoshow")
    row["raw"] = record
    return cast(AppointmentRow, row)


RESOURCE = Resource(
    name="appointments",
    path="/appointments/booked",
    collection="appointments",
    id_field="appointmentid",
    model=Appointment,
    to_row=to_row,
    key_column="appointment_id",
    # Without showcancelled, cancellations vanish from the listing and reconcile would mark
    # them deleted; showcopay=false is documented as faster and copay is not stored.
    params={"showcancelled": "true", "showcopay": "false"},
    guard_column="last_modified_at",
    guard_field="lastmodified",
    department_field="departmentid",
    read=ReadStrategy.BY_DEPARTMENT,
    # The feed carries booked and cancelled appointments alike (same record shape).
    feed=Feed(
        path="/appointments/changed",
        subscription_path="/appointments/changed/subscription",
        params={"showcopay": "false"},
    ),
    multi_department_path="/appointments/booked/multipledepartment",
    # The feed adds the appointment's notes, /appointments/booked does not send them: an
    # appointment read one way, then the other, did not change.
    volatile_fields=("appointmentnotes",),
)
