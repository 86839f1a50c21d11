"""Each resource's to_row on real-shaped records (ATHENA_API.md §2): good ones and bad ones."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time
from typing import Any

import pytest

import models
from worker.parse import BadRecord
from worker.resources import (
    all_resources,
    appointment_types,
    appointments,
    departments,
    get_resource,
    providers,
)

P = "195900"

PROVIDER = {
    "providerid": 118,
    "firstname": "Shayna",
    "lastname": "Avallone",
    "displayname": "Shayna Avallone, MD",
    "npi": 1245319599,
    "specialty": "Internal Medicine",
    "providertype": "MD",
    "providertypeid": "MD",
    "entitytype": "Person",
    "billable": True,
    "schedulingname": "savallone1",
    "providergrouplist": ["2", "22"],
    "otherprovideridlist": ["119"],
    "hideinportal": False,
    "createencounteroncheckin": True,
}
DEPARTMENT = {
    "departmentid": "1",
    "name": "MAIN ST (HUB)",
    "patientdepartmentname": "Rome Office",
    "address": "8762 STONERIDGE CT",
    "city": "CLAXTON",
    "state": "GA",
    "zip": "30417",
    "phone": "(555) 916-7897",
    "timezone": -4,
    "timezoneoffset": -5,
    "timezonename": "US/Eastern",
    "doesnotobservedst": False,
    "providergroupid": "1",
    "providergroupname": "Downtown Health Group",
    "servicedepartment": True,
    "ishospitaldepartment": False,
    "placeofservicetypeid": "11",
    "clinicals": "ON",
    "providerlist": ["68", "69", "75"],
}
APPOINTMENT_TYPE = {
    "appointmenttypeid": 82,
    "name": "Any 15",
    "shortname": "ANY5",
    "duration": 15,
    "patientdisplayname": "Established Patient",
    "generic": True,
    "patient": True,
    "templatetypeonly": False,
    "createencounteroncheckin": True,
}
APPOINTMENT = {
    "appointmentid": "1115851",
    "date": "06/01/2020",
    "starttime": "08:00",
    "duration": 15,
    "appointmentstatus": "f",
    "departmentid": "1",
    "providerid": "69",
    "hl7providerid": 69,
    "patientid": "7895",
    "appointmenttypeid": "82",
    "appointmenttype": "Any 15",
    "patientappointmenttypename": "Any 15",
    "lastmodified": "06/02/2020 17:30:37",
    "lastmodifiedby": "API-15378",
    "scheduleddatetime": "06/02/2020 17:30:37",
    "scheduledby": "API-15378",
    "templateappointmentid": "1115851",
    "templateappointmenttypeid": "82",
    "copay": 0,
    "chargeentrynotrequired": False,
    "coordinatorenterprise": False,
}
CANCELLED = {
    **APPOINTMENT,
    "appointmentid": "1115852",
    "appointmentstatus": "x",
    "cancelledby": "jdoe",
    "cancelleddatetime": "06/03/2020 09:15:00",
    "cancelreasonid": "-5",
    "cancelreasonname": "PATIENT CANCELLED",
    "cancelreasonnoshow": "false",
    "rescheduledappointmentid": 1115900,
}
ZONES = {"1": "US/Eastern", "21": "America/Phoenix"}


def appt(record: dict[str, Any], **context: Any) -> dict[str, Any]:
    return appointments.to_row(record, practice_id=P, timezones=ZONES, **context)


def without(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


# --- every mapper fills exactly its table's columns -------------------------------------------


@pytest.mark.parametrize(
    ("name", "record"),
    [
        ("providers", PROVIDER),
        ("departments", DEPARTMENT),
        ("appointment-types", APPOINTMENT_TYPE),
        ("appointments", APPOINTMENT),
    ],
)
def test_rows_cover_exactly_the_mapped_columns(name, record):
    resource = get_resource(name)
    row = resource.to_row(record, practice_id=P, timezones=ZONES)
    columns = {c.name for c in resource.model.__table__.columns} - models.BOOKKEEPING_COLUMNS
    assert set(row) == columns
    assert row[resource.key_column] == resource.record_id(record)
    assert row["raw"] == record


def test_raw_is_the_record_exactly_as_received():
    record = copy.deepcopy(APPOINTMENT)
    row = appt(record)
    assert row["raw"] is record and row["raw"] == APPOINTMENT


def test_resource_declarations():
    declared = all_resources()
    assert list(declared) == ["departments", "providers", "appointment-types", "appointments"]
    assert dict(declared["providers"].params) == {"showallproviderids": "true"}
    assert dict(declared["departments"].params) == {
        "showalldepartments": "true",
        "providerlist": "true",
    }
    assert dict(declared["appointment-types"].params) == {"hidenonpatient": "false"}
    assert declared["appointments"].params["showcancelled"] == "true"
    assert declared["appointments"].guard_column == "last_modified_at"
    assert declared["appointments"].path == "/appointments/booked"
    with pytest.raises(TypeError):
        declared["providers"].params["limit"] = "5"  # type: ignore[index]
    with pytest.raises(KeyError, match="unknown resource"):
        get_resource("patients")


# --- providers --------------------------------------------------------------------------------


def test_full_provider():
    row = providers.to_row(PROVIDER, practice_id=P)
    assert row["provider_id"] == "118"
    assert row["npi"] == "1245319599"
    assert (row["first_name"], row["last_name"]) == ("Shayna", "Avallone")
    assert (row["billable"], row["hide_in_portal"], row["create_encounter_on_check_in"]) == (
        True,
        False,
        True,
    )
    assert row["other_provider_ids"] == ["119"]
    assert row["provider_group_ids"] == ["2", "22"]
    assert row["accepting_new_patients"] is None


def test_sparse_provider_with_string_id_and_unicode_names():
    record = {"providerid": "7", "firstname": "Zoë", "lastname": "Ñúñez-Łukasz"}
    row = providers.to_row(record, practice_id=P)
    assert (row["provider_id"], row["first_name"], row["last_name"]) == (
        "7",
        "Zoë",
        "Ñúñez-Łukasz",
    )
    assert row["npi"] is None and row["billable"] is None and row["other_provider_ids"] is None


def test_provider_with_string_booleans():
    record = {"providerid": 9, "billable": "true", "hideinportal": "false", "specialtyid": 40}
    row = providers.to_row(record, practice_id=P)
    assert (row["billable"], row["hide_in_portal"], row["specialty_id"]) == (True, False, "40")


# --- departments ------------------------------------------------------------------------------


def test_full_department():
    row = departments.to_row(DEPARTMENT, practice_id=P)
    assert row["department_id"] == "1"
    assert (row["timezone_name"], row["timezone_offset"], row["does_not_observe_dst"]) == (
        "US/Eastern",
        -5,
        False,
    )
    assert row["provider_ids"] == ["68", "69", "75"]
    assert row["place_of_service_type_id"] == "11"
    assert row["hidden"] is None  # not known unless the sync compared listings


@pytest.mark.parametrize("hidden", [True, False])
def test_department_hidden_comes_from_the_caller(hidden):
    assert departments.to_row(DEPARTMENT, practice_id=P, hidden=hidden)["hidden"] is hidden


def test_department_coordinates_arrive_as_strings():
    record = {"departmentid": 21, "latitude": "33.4484", "longitude": "-112.0740"}
    row = departments.to_row(record, practice_id=P)
    assert row["department_id"] == "21"
    assert row["latitude"] == pytest.approx(33.4484)
    assert row["longitude"] == pytest.approx(-112.074)


# --- appointment types ------------------------------------------------------------------------


def test_appointment_type_int_id_becomes_text():
    row = appointment_types.to_row(APPOINTMENT_TYPE, practice_id=P)
    assert (row["appointment_type_id"], row["duration_minutes"], row["short_name"]) == (
        "82",
        15,
        "ANY5",
    )
    assert (row["generic"], row["patient"], row["template_type_only"]) == (True, True, False)


def test_appointment_type_string_duration():
    row = appointment_types.to_row({"appointmenttypeid": "5", "duration": "30"}, practice_id=P)
    assert row["duration_minutes"] == 30


# --- appointments -----------------------------------------------------------------------------


def test_booked_appointment():
    row = appt(APPOINTMENT)
    assert row["appointment_id"] == "1115851"
    assert (row["department_id"], row["provider_id"], row["patient_id"]) == ("1", "69", "7895")
    assert (row["local_date"], row["local_time"]) == (date(2020, 6, 1), time(8, 0))
    assert row["start_at"] == datetime(2020, 6, 1, 12, 0, tzinfo=UTC)
    assert row["timezone_name"] == "US/Eastern"
    assert row["last_modified_at"] == datetime(2020, 6, 2, 21, 30, 37, tzinfo=UTC)
    assert row["scheduled_at"] == row["last_modified_at"]
    assert row["hl7_provider_id"] == "69"
    assert (row["status"], row["duration_minutes"]) == ("f", 15)
    assert row["cancelled_at"] is None and row["cancel_reason"] is None


def test_cancelled_appointment_keeps_its_cancellation():
    row = appt(CANCELLED)
    assert row["status"] == "x"
    assert row["cancelled_at"] == datetime(2020, 6, 3, 13, 15, tzinfo=UTC)
    assert (row["cancelled_by"], row["cancel_reason"], row["cancel_reason_id"]) == (
        "jdoe",
        "PATIENT CANCELLED",
        "-5",
    )
    assert row["cancel_reason_no_show"] is False
    assert row["rescheduled_appointment_id"] == "1115900"


def test_open_slot_has_no_patient():
    row = appt({**without(APPOINTMENT, "patientid"), "appointmentstatus": "o"})
    assert row["patient_id"] is None and row["status"] == "o"


def test_appointment_uses_its_departments_zone():
    row = appt({**APPOINTMENT, "departmentid": "21", "date": "03/10/2024", "starttime": "02:30"})
    assert row["timezone_name"] == "America/Phoenix"
    assert row["start_at"] == datetime(2024, 3, 10, 9, 30, tzinfo=UTC)


def test_appointment_on_the_spring_forward_gap():
    row = appt({**APPOINTMENT, "date": "03/10/2024", "starttime": "02:30"})
    assert row["local_time"] == time(2, 30)
    assert row["start_at"] == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)


def test_fallback_zone_is_used_only_when_given():
    record = {**APPOINTMENT, "departmentid": "99"}
    with pytest.raises(BadRecord) as caught:
        appt(record)
    assert (caught.value.field, caught.value.reason) == (
        "departmentid",
        "no time zone known for the appointment's department",
    )
    row = appt(record, fallback_zone="US/Central")
    assert row["start_at"] == datetime(2020, 6, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        (without(APPOINTMENT, "appointmentid"), "appointmentid", "appointmentid is missing"),
        ({**APPOINTMENT, "appointmentid": ""}, "appointmentid", "appointmentid is missing"),
        (
            {**APPOINTMENT, "appointmentid": {"id": 1}},
            "appointmentid",
            "appointmentid must be an id, got object",
        ),
        (
            {**APPOINTMENT, "departmentid": {"id": "1"}},
            "departmentid",
            "departmentid must be an id, got object",
        ),
        (without(APPOINTMENT, "departmentid"), "departmentid", "departmentid is missing"),
        ({**APPOINTMENT, "date": "02/30/2020"}, "date", "date is an impossible date"),
        ({**APPOINTMENT, "date": "01/01/0001"}, "date", "date is missing"),
        (without(APPOINTMENT, "date"), "date", "date is missing"),
        ({**APPOINTMENT, "starttime": "25:00"}, "starttime", "starttime is an impossible time"),
        ({**APPOINTMENT, "starttime": "8am"}, "starttime", "starttime is not an HH:MM time"),
        ({**APPOINTMENT, "duration": "abc"}, "duration", "duration is not a whole number"),
        (
            {**APPOINTMENT, "lastmodified": "06/31/2020 10:00:00"},
            "lastmodified",
            "lastmodified is an impossible date",
        ),
        (
            {**APPOINTMENT, "providerid": True},
            "providerid",
            "providerid is a boolean, not an id",
        ),
    ],
)
def test_malformed_appointments_are_bad_records(record, field, reason):
    with pytest.raises(BadRecord) as caught:
        appt(record)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_unknown_department_zone_name_is_a_bad_record():
    with pytest.raises(BadRecord, match="unknown time zone"):
        appointments.to_row(APPOINTMENT, practice_id=P, timezones={"1": "Eastern Standard"})


@pytest.mark.parametrize(
    ("module", "record", "field"),
    [
        (providers, {"firstname": "No", "lastname": "Id"}, "providerid"),
        (providers, {"providerid": 1.5}, "providerid"),
        (departments, {"name": "No id"}, "departmentid"),
        (appointment_types, {"appointmenttypeid": None}, "appointmenttypeid"),
    ],
)
def test_reference_records_without_a_usable_id_are_bad_records(module, record, field):
    with pytest.raises(BadRecord) as caught:
        module.to_row(record, practice_id=P)
    assert caught.value.field == field
    assert field in caught.value.reason


@pytest.mark.parametrize(
    ("module", "record", "column"),
    [
        (providers, {"providerid": 1, "billable": "sometimes"}, "billable"),
        (providers, {"providerid": 1, "otherprovideridlist": "119"}, "other_provider_ids"),
        (providers, {"providerid": 1, "homedepartment": {"name": "x"}}, "home_department"),
        (departments, {"departmentid": "1", "latitude": "north"}, "latitude"),
        (departments, {"departmentid": "1", "timezoneoffset": "east"}, "timezone_offset"),
        (appointment_types, {"appointmenttypeid": 82, "duration": "abc"}, "duration_minutes"),
    ],
)
def test_a_malformed_descriptive_field_of_reference_data_is_stored_as_null(module, record, column):
    # One odd field must not cost a department (and with it every appointment's time zone).
    row = module.to_row(record, practice_id=P)
    assert row[column] is None
    assert row["raw"] == record


@pytest.mark.parametrize("record", [None, "1115851", [APPOINTMENT], 42])
def test_a_record_that_is_not_an_object_is_a_bad_record(record):
    for name in all_resources():
        with pytest.raises(BadRecord, match="not a JSON object"):
            get_resource(name).to_row(record, practice_id=P, timezones=ZONES)


def test_record_id_for_dead_letters_never_raises():
    resource = get_resource("appointments")
    assert resource.record_id(APPOINTMENT) == "1115851"
    assert resource.record_id({"appointmentid": {"x": 1}}) is None
    assert resource.record_id("garbage") is None


def test_start_times_keep_zones_apart_and_bad_values_fail_every_time() -> None:
    """The same date and time in two departments' zones are two instants (the hour-offset cache
    is per zone), and a bad value is refused on every record."""
    from worker.resources import appointments as appts

    base = {"appointmentid": "1", "departmentid": "1", "date": "11/01/2026", "starttime": "01:30"}
    zones = {"1": "US/Eastern", "2": "US/Arizona"}
    east = appts.to_row(base, practice_id="195900", timezones=zones)
    west = appts.to_row({**base, "departmentid": "2"}, practice_id="195900", timezones=zones)
    assert east["start_at"].isoformat() == "2026-11-01T05:30:00+00:00"  # first of the two 1:30s
    assert west["start_at"].isoformat() == "2026-11-01T08:30:00+00:00"
    for _ in range(2):
        with pytest.raises(BadRecord, match="starttime"):
            appts.to_row({**base, "starttime": "25:00"}, practice_id="195900", timezones=zones)
