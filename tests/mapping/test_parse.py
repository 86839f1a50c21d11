"""worker.parse: tolerant of the API's mixed types, strict about nonsense, silent about values."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from worker.parse import (
    BadRecord,
    parse_athena_datetime,
    parse_bool,
    parse_date,
    parse_float,
    parse_hhmm,
    parse_id,
    parse_int,
    parse_str,
    parse_str_list,
    to_eastern_param,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(118, "118"), ("118", "118"), (" 1115851 ", "1115851"), (82.0, "82"), ("-5", "-5"), (0, "0")],
)
def test_parse_id_accepts_ints_and_strings(value, expected):
    assert parse_id(value, "providerid") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "providerid is missing"),
        ("", "providerid is missing"),
        ("   ", "providerid is missing"),
        (True, "providerid is a boolean, not an id"),
        (1.5, "providerid is a fractional number, not an id"),
        ({"id": 1}, "providerid must be an id, got object"),
        ([1], "providerid must be an id, got array"),
    ],
)
def test_parse_id_rejects_with_a_reason_naming_the_field(value, reason):
    with pytest.raises(BadRecord) as caught:
        parse_id(value, "providerid")
    assert (caught.value.reason, caught.value.field) == (reason, "providerid")


def test_optional_id_may_be_absent():
    assert parse_id(None, "patientid", required=False) is None
    assert parse_id("", "patientid", required=False) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("Y", True),
        ("N", False),
        (1, True),
        (0, False),
        ("1", True),
        (None, None),
        ("", None),
    ],
)
def test_parse_bool_spellings(value, expected):
    assert parse_bool(value, "billable") == expected


@pytest.mark.parametrize("value", ["maybe", 2, 1.5, {}, []])
def test_parse_bool_rejects(value):
    with pytest.raises(BadRecord, match="billable is not a boolean"):
        parse_bool(value, "billable")


@pytest.mark.parametrize(("value", "expected"), [(15, 15), ("15", 15), (" -5 ", -5), (30.0, 30)])
def test_parse_int(value, expected):
    assert parse_int(value, "duration") == expected


@pytest.mark.parametrize("value", ["abc", "1.5", 1.5, True, {}, "15 min"])
def test_parse_int_rejects(value):
    with pytest.raises(BadRecord, match="duration"):
        parse_int(value, "duration")


def test_parse_float_takes_numeric_strings():
    assert parse_float("32.1606", "latitude") == pytest.approx(32.1606)
    assert parse_float(-81.9, "longitude") == pytest.approx(-81.9)
    with pytest.raises(BadRecord, match="latitude is not a number"):
        parse_float("north", "latitude")


def test_parse_str_keeps_unicode_and_stringifies_numbers():
    assert parse_str("  Zoë Ñúñez-Łukasz 李 ", "firstname") == "Zoë Ñúñez-Łukasz 李"
    assert parse_str(30417, "zip") == "30417"
    assert parse_str("", "zip") is None
    with pytest.raises(BadRecord, match="sex must be text, got object"):
        parse_str({"a": 1}, "sex")


def test_parse_str_list():
    assert parse_str_list(["2", 22, " 3 "], "providergrouplist") == ["2", "22", "3"]
    assert parse_str_list(None, "providergrouplist") is None
    with pytest.raises(BadRecord, match="must be a list"):
        parse_str_list("2,22", "providergrouplist")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("06/01/2020", date(2020, 6, 1)), ("6/1/2020", date(2020, 6, 1)), ("01/01/0001", None)],
)
def test_parse_date(value, expected):
    assert parse_date(value, "date") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("02/30/2020", "date is an impossible date"),
        ("13/01/2020", "date is an impossible date"),
        ("2020-06-01", "date is not a MM/DD/YYYY date"),
        (20200601, "date is not a MM/DD/YYYY date"),
    ],
)
def test_parse_date_rejects(value, reason):
    with pytest.raises(BadRecord) as caught:
        parse_date(value, "date")
    assert caught.value.reason == reason


def test_required_date_rejects_the_sentinel():
    with pytest.raises(BadRecord, match="date is missing"):
        parse_date("01/01/0001", "date", required=True)


@pytest.mark.parametrize(("value", "expected"), [("08:00", time(8)), ("7:05", time(7, 5))])
def test_parse_hhmm(value, expected):
    assert parse_hhmm(value, "starttime") == expected


@pytest.mark.parametrize("value", ["24:00", "08:60", "8am", "0800", 800])
def test_parse_hhmm_rejects(value):
    with pytest.raises(BadRecord, match="starttime"):
        parse_hhmm(value, "starttime")


def test_athena_datetime_is_eastern_and_returned_in_utc():
    parsed = parse_athena_datetime("06/02/2020 17:30:37", "lastmodified")
    assert parsed == datetime(2020, 6, 2, 21, 30, 37, tzinfo=UTC)  # EDT, UTC-4
    assert parsed is not None and parsed.tzinfo == UTC
    winter = parse_athena_datetime("01/15/2021 09:00:00", "lastmodified")
    assert winter == datetime(2021, 1, 15, 14, 0, tzinfo=UTC)  # EST, UTC-5
    no_seconds = parse_athena_datetime("01/15/2021 09:00", "lastappointment")
    assert no_seconds == winter


def test_athena_datetime_in_another_zone():
    parsed = parse_athena_datetime("06/02/2020 17:30:37", "x", zone="America/Phoenix")
    assert parsed == datetime(2020, 6, 3, 0, 30, 37, tzinfo=UTC)


@pytest.mark.parametrize("value", ["06/02/2020", "06/02/2020 25:00:00", "yesterday", 1591130000])
def test_athena_datetime_rejects(value):
    with pytest.raises(BadRecord, match="lastmodified"):
        parse_athena_datetime(value, "lastmodified")


def test_athena_datetime_sentinel_and_absent_are_none():
    assert parse_athena_datetime("01/01/0001 00:00:00", "cancelleddatetime") is None
    assert parse_athena_datetime(None, "cancelleddatetime") is None


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2020, 6, 2, 21, 30, 37, tzinfo=UTC), "06/02/2020 17:30:37"),
        (datetime(2021, 1, 15, 14, 0, tzinfo=UTC), "01/15/2021 09:00:00"),
        (datetime(2021, 1, 15, 9, 0, tzinfo=timezone(timedelta(hours=-5))), "01/15/2021 09:00:00"),
    ],
)
def test_to_eastern_param(moment, expected):
    assert to_eastern_param(moment) == expected


def test_to_eastern_param_round_trips():
    moment = datetime(2024, 11, 3, 6, 15, tzinfo=UTC)  # 01:15 EST, the second 01:15 that day
    text = to_eastern_param(moment)
    assert text == "11/03/2024 01:15:00"
    # The wall-clock text is ambiguous; parsing picks the first occurrence (one hour earlier),
    # which is the safe direction for a startlastmodified lower bound.
    assert parse_athena_datetime(text, "x") == moment - timedelta(hours=1)


def test_to_eastern_param_refuses_naive():
    with pytest.raises(ValueError, match="aware"):
        to_eastern_param(datetime(2024, 1, 1))


def test_bad_record_reasons_never_contain_the_value():
    secret = "Jane Q Patient 1980-01-01"
    for call in (
        lambda: parse_int(secret, "duration"),
        lambda: parse_date(secret, "dob"),
        lambda: parse_bool(secret, "flag"),
        lambda: parse_athena_datetime(secret, "lastmodified"),
    ):
        with pytest.raises(BadRecord) as caught:
            call()
        assert secret not in str(caught.value)
