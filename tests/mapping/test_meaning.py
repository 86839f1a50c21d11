"""Values that cannot be true, and values a database cannot hold (NaN, Infinity, lone surrogates),
on real-shaped records (ATHENA_API.md §2): the strict appointment mapper refuses them; reference
data keeps the record with the odd field NULL."""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any

import pytest

from tests.mapping.test_mappers import (
    APPOINTMENT,
    APPOINTMENT_TYPE,
    CANCELLED,
    DEPARTMENT,
    PROVIDER,
    ZONES,
    P,
    appt,
)
from worker.athena.responses import NonFinite
from worker.jsonsafe import find_unstorable, json_safe
from worker.parse import BadRecord
from worker.resources import appointment_types, appointments, departments, providers

NAN, INF = NonFinite("nan"), NonFinite("inf")  # what the response decoder makes of NaN/Infinity


def decoded(text: str) -> Any:
    """A body as the client decodes one that orjson refuses (bare NaN/Infinity)."""
    return json.loads(text, parse_constant=NonFinite)


# --- strict: an appointment with a value that cannot be true is a bad record ------------------

REFUSED = [
    # (record, field, reason)
    ({**APPOINTMENT, "duration": -15}, "duration", "duration is negative"),
    ({**APPOINTMENT, "duration": "-1"}, "duration", "duration is negative"),
    ({**APPOINTMENT, "duration": 1441}, "duration", "duration is longer than a day"),
    ({**APPOINTMENT, "duration": 100000}, "duration", "duration is longer than a day"),
    ({**APPOINTMENT, "date": "01/01/0001"}, "date", "date is missing"),  # the "none" sentinel
    ({**APPOINTMENT, "date": "06/01/0202"}, "date", "date is outside the years 1900-2100"),
    ({**APPOINTMENT, "date": "12/31/1899"}, "date", "date is outside the years 1900-2100"),
    ({**APPOINTMENT, "date": "01/01/2101"}, "date", "date is outside the years 1900-2100"),
    ({**APPOINTMENT, "date": "12/31/9999"}, "date", "date is outside the years 1900-2100"),
    ({**APPOINTMENT, "starttime": "24:00"}, "starttime", "starttime is an impossible time"),
    ({**APPOINTMENT, "starttime": "23:60"}, "starttime", "starttime is an impossible time"),
    ({**APPOINTMENT, "starttime": "-1:30"}, "starttime", "starttime is not an HH:MM time"),
    (
        {**APPOINTMENT, "lastmodified": "12/31/9999 23:59:59"},
        "lastmodified",
        "lastmodified is outside the years 1900-2100",
    ),
    (
        {**APPOINTMENT, "scheduleddatetime": "06/02/1020 17:30:37"},
        "scheduleddatetime",
        "scheduleddatetime is outside the years 1900-2100",
    ),
    (
        {**CANCELLED, "cancelleddatetime": "06/03/2202 09:15:00"},
        "cancelleddatetime",
        "cancelleddatetime is outside the years 1900-2100",
    ),
    (
        {**APPOINTMENT, "checkindatetime": "06/01/1776 07:53:00"},
        "checkindatetime",
        "checkindatetime is outside the years 1900-2100",
    ),
    (
        {**APPOINTMENT, "lastmodified": "06/02/2020 24:00:00"},
        "lastmodified",
        "lastmodified is an impossible time",
    ),
]


@pytest.mark.parametrize(("record", "field", "reason"), REFUSED)
def test_values_that_cannot_be_true_are_bad_records(record, field, reason):
    with pytest.raises(BadRecord) as caught:
        appt(record)
    assert (caught.value.field, caught.value.reason) == (field, reason)


KEPT = [
    # (record, column, stored value): odd but possible, never refused
    ({**APPOINTMENT, "duration": 0}, "duration_minutes", 0),
    ({**APPOINTMENT, "duration": 1440}, "duration_minutes", 1440),
    ({**APPOINTMENT, "duration": "480"}, "duration_minutes", 480),
    ({k: v for k, v in APPOINTMENT.items() if k != "duration"}, "duration_minutes", None),
    ({**APPOINTMENT, "starttime": "00:00"}, "local_time", "00:00"),
    ({**APPOINTMENT, "starttime": "23:59"}, "local_time", "23:59"),
    ({**APPOINTMENT, "date": "01/01/1900"}, "local_date", date(1900, 1, 1)),
    ({**APPOINTMENT, "date": "12/31/2100"}, "local_date", date(2100, 12, 31)),
    # Audit times far from the appointment, or ahead of any clock, are skew or history.
    ({**APPOINTMENT, "lastmodified": "06/02/2099 17:30:37"}, "last_modified_at", 2099),
    ({**APPOINTMENT, "scheduleddatetime": "06/02/1999 17:30:37"}, "scheduled_at", 1999),
    ({**APPOINTMENT, "scheduleddatetime": "01/01/0001 00:00:00"}, "scheduled_at", None),
]


@pytest.mark.parametrize(("record", "column", "stored"), KEPT)
def test_odd_but_possible_values_are_kept(record, column, stored):
    value = appt(record)[column]
    if column == "local_time":
        value = value.strftime("%H:%M")
    elif isinstance(stored, int) and column.endswith("_at"):
        value = value.year
    assert value == stored


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ('"duration":NaN', "duration", "duration is NaN, a number JSON cannot hold"),
        ('"copay":Infinity', "copay", "copay is Infinity, a number JSON cannot hold"),
        ('"copay":-Infinity', "copay", "copay is -Infinity, a number JSON cannot hold"),
        ('"copay":1e999', "copay", "copay is Infinity, a number JSON cannot hold"),
        (
            '"appointmentnotes":[{"noteid":1,"x":NaN}]',
            "appointmentnotes[0].x",
            "appointmentnotes[0].x is NaN, a number JSON cannot hold",
        ),
        (
            '"patient":{"balance":-Infinity}',
            "patient.balance",
            "patient.balance is -Infinity, a number JSON cannot hold",
        ),
        (
            '"appointmenttype":"Any \\ud83d15"',
            "appointmenttype",
            "appointmenttype holds a lone surrogate, text UTF-8 cannot encode",
        ),
        (
            '"cancelreasonname":"Ni\\u00f1o \\udc00"',
            "cancelreasonname",
            "cancelreasonname holds a lone surrogate, text UTF-8 cannot encode",
        ),
        (
            '"x\\ud800":"v"',
            "(a key)",
            "(a key) holds a lone surrogate, text UTF-8 cannot encode",
        ),
        (
            '"patient":{"n\\udfff":1}',
            "patient.(a key)",
            "patient.(a key) holds a lone surrogate, text UTF-8 cannot encode",
        ),
    ],
)
def test_an_appointment_a_database_cannot_hold_is_a_bad_record_naming_the_field(
    text, field, reason
):
    body = json.dumps(APPOINTMENT)[:-1] + "," + text + "}"
    with pytest.raises(BadRecord) as caught:
        appt(decoded(body))
    assert (caught.value.field, caught.value.reason) == (field, reason)


# --- lenient: reference data keeps the record, the odd field is NULL, raw stays JSON ----------


@pytest.mark.parametrize(
    ("module", "record", "column"),
    [
        (departments, {**DEPARTMENT, "latitude": NAN}, "latitude"),
        (departments, {**DEPARTMENT, "timezoneoffset": INF}, "timezone_offset"),
        (departments, {**DEPARTMENT, "providerlist": ["68", NAN]}, "provider_ids"),
        (providers, {**PROVIDER, "displayname": NAN}, "display_name"),
        (providers, {**PROVIDER, "npi": INF}, "npi"),
        (providers, {**PROVIDER, "specialty": "Internal \ud800"}, "specialty"),
        (departments, {**DEPARTMENT, "city": "R\u00edo \udfff"}, "city"),
        (appointment_types, {**APPOINTMENT_TYPE, "duration": NAN}, "duration_minutes"),
        (appointment_types, {**APPOINTMENT_TYPE, "duration": -15}, "duration_minutes"),
        (appointment_types, {**APPOINTMENT_TYPE, "duration": 5000}, "duration_minutes"),
    ],
)
def test_reference_data_with_an_odd_number_lands_with_the_field_null(module, record, column):
    # A department lost to one odd latitude would cost every appointment its time zone.
    row = module.to_row(record, practice_id=P)
    assert row[column] is None
    assert find_unstorable(row) is None, "nothing Postgres would refuse is left in the row"
    assert json.loads(json.dumps(row["raw"], allow_nan=False)) == json_safe(record)


def test_raw_keeps_the_non_finite_value_spelled_as_text():
    row = departments.to_row({**DEPARTMENT, "latitude": NAN, "longitude": -INF}, practice_id=P)
    assert row["raw"]["latitude"] == "NaN" and row["raw"]["longitude"] == "-Infinity"
    assert row["raw"]["providerlist"] == DEPARTMENT["providerlist"]


def test_an_id_that_is_nan_is_a_bad_record_that_says_so():
    with pytest.raises(BadRecord) as caught:
        providers.to_row({**PROVIDER, "providerid": NAN}, practice_id=P)
    assert caught.value.reason == "providerid is NaN, not an id"


def test_json_safe_copies_only_when_it_must():
    clean = {"a": [1, 2.5, {"b": "c"}], "d": None, "e": "Ni\u00f1o \U0001f600"}
    assert json_safe(clean) is clean
    dirty = {"a": [1, NAN, {"b": -INF}], "d": float("inf"), "e": "x\ud800y"}
    assert json_safe(dirty) == {
        "a": [1, "NaN", {"b": "-Infinity"}],
        "d": "Infinity",
        "e": "x\ufffdy",
    }
    assert math.isnan(dirty["a"][1]), "the original is left alone"


def test_a_clean_appointment_is_mapped_with_raw_as_received():
    record = decoded(json.dumps(APPOINTMENT))
    row = appointments.to_row(record, practice_id=P, timezones=ZONES)
    assert row["raw"] is record
