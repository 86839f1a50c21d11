"""The data is shaped like the real payloads and deterministic from the seed."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from sandbox import SandboxServer
from tests.sandbox.conftest import PRACTICE, Api, make_config

EVERYTHING = {
    "startdate": "01/01/2025",
    "enddate": "12/31/2026",
    "showcancelled": "true",
    "limit": "5000",
}


def test_mixed_id_types_as_in_the_real_api(api: Api) -> None:
    provider = api.ok(f"/v1/{PRACTICE}/providers")["providers"][0]
    atype = api.ok(f"/v1/{PRACTICE}/appointmenttypes")["appointmenttypes"][0]
    department = api.ok(f"/v1/{PRACTICE}/departments")["departments"][0]
    appointment = api.ok(f"/v1/{PRACTICE}/appointments/booked", EVERYTHING)["appointments"][0]
    assert isinstance(provider["providerid"], int)
    assert isinstance(atype["appointmenttypeid"], int)
    assert isinstance(department["departmentid"], str)
    for field in ("appointmentid", "providerid", "appointmenttypeid", "departmentid"):
        assert isinstance(appointment[field], str), field
    assert isinstance(appointment["hl7providerid"], int)
    assert isinstance(appointment["duration"], int)


def test_providers_include_sparse_records_and_optional_npi(api: Api) -> None:
    providers = api.ok(f"/v1/{PRACTICE}/providers")["providers"]
    sparse = [
        p for p in providers if set(p) == {"providerid", "firstname", "lastname", "displayname"}
    ]
    assert sparse
    assert any(isinstance(p.get("npi"), int) for p in providers)
    assert any("npi" not in p for p in providers if p not in sparse)


def test_non_ascii_names_survive_the_wire(api: Api) -> None:
    names = {p["firstname"] for p in api.ok(f"/v1/{PRACTICE}/providers")["providers"]}
    assert {"José", "Zoë", "Øyvind"} <= names
    assert any(
        p["lastname"] == "李" or p["firstname"] == "娜" for p in api.server.truth()["providers"]
    )


def test_departments_span_time_zones_with_correct_offsets(api: Api) -> None:
    departments = {d["timezonename"]: d for d in api.server.truth()["departments"]}
    assert {"US/Eastern", "US/Central", "US/Mountain", "US/Pacific", "US/Arizona"} <= set(
        departments
    )
    arizona = departments["US/Arizona"]
    assert (arizona["doesnotobservedst"], arizona["timezone"], arizona["timezoneoffset"]) == (
        True,
        -7,
        -7,
    )
    eastern = departments["US/Eastern"]
    assert (eastern["doesnotobservedst"], eastern["timezoneoffset"]) == (False, -5)
    assert eastern["timezone"] == -5  # anchor 03/01/2026 is before spring-forward


def test_every_status_and_the_cancel_fields(api: Api) -> None:
    rows = api.server.truth()["appointments"]
    assert set(Counter(a["appointmentstatus"] for a in rows)) == {"f", "x", "o", "2", "3", "4"}
    for row in rows:
        if row["appointmentstatus"] == "x":
            assert {
                "cancelledby",
                "cancelleddatetime",
                "cancelreasonid",
                "cancelreasonname",
            } <= set(row)
        if row["appointmentstatus"] == "o":
            assert "patientid" not in row
        else:
            assert row["patientid"]
        dt.datetime.strptime(row["lastmodified"], "%m/%d/%Y %H:%M:%S")


def test_appointments_on_dst_change_days_use_only_existing_times(api: Api) -> None:
    rows = api.server.truth()["appointments"]
    departments = {d["departmentid"]: d for d in api.server.truth()["departments"]}
    for day in ("03/09/2025", "03/08/2026"):  # spring forward around the anchor
        on_day = [a for a in rows if a["date"] == day]
        assert {a["starttime"] for a in on_day} >= {"01:30", "03:00"}
        assert not any(a["starttime"].startswith("02:") for a in on_day)
        assert {departments[a["departmentid"]]["doesnotobservedst"] for a in on_day} == {
            True,
            False,
        }
    for day in ("11/02/2025", "11/01/2026"):  # fall back: 01:30 happens twice
        assert "01:30" in {a["starttime"] for a in rows if a["date"] == day}


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = SandboxServer(make_config(seed=5)).truth()
    again = SandboxServer(make_config(seed=5)).truth()
    other = SandboxServer(make_config(seed=6)).truth()
    assert first == again
    assert first["appointments"] != other["appointments"]
    assert first["providers"] != other["providers"]


def test_practices_get_different_data() -> None:
    server = SandboxServer(make_config(practices=("195900", "2000001")))
    assert server.truth("195900")["appointments"] != server.truth("2000001")["appointments"]


def test_practiceinfo_record(api: Api) -> None:
    info = api.ok(f"/v1/{PRACTICE}/practiceinfo")
    assert info["totalcount"] == 1
    assert info["practiceinfo"][0]["practiceid"] == PRACTICE
    assert info["practiceinfo"][0]["golivedate"] == "09/14/2015"
