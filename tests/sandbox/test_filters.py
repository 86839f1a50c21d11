"""The real filters, their defaults, and the 400 answers for bad parameters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.sandbox.conftest import ALL_DAYS, BOOKED, PRACTICE, Api

EVERYTHING = {**ALL_DAYS, "showcancelled": "true", "limit": "5000"}


def booked(api: Api, **params: str) -> Any:
    return api.ok(BOOKED, {**ALL_DAYS, "limit": "5000", **params})["appointments"]


def test_cancelled_are_hidden_by_default(api: Api) -> None:
    default = booked(api)
    everything = booked(api, showcancelled="true")
    assert {a["appointmentstatus"] for a in default} == {"f", "o", "2", "3", "4"}
    cancelled = [a for a in everything if a["appointmentstatus"] == "x"]
    assert cancelled and len(everything) == len(default) + len(cancelled)


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1"])
def test_booleans_accept_true_and_1_any_case(api: Api, value: str) -> None:
    assert any(a["appointmentstatus"] == "x" for a in booked(api, showcancelled=value))


@pytest.mark.parametrize("value", ["false", "FALSE", "0"])
def test_booleans_accept_false_and_0(api: Api, value: str) -> None:
    assert all(a["appointmentstatus"] != "x" for a in booked(api, showcancelled=value))


def test_a_bad_boolean_is_400(api: Api) -> None:
    response = api.get(BOOKED, {**ALL_DAYS, "showcancelled": "yes"})
    assert response.status_code == 400
    assert response.json()["fields"] == ["showcancelled"]


def test_missing_dates_get_the_real_400_body(api: Api) -> None:
    response = api.get(BOOKED, {"enddate": "01/01/2026"})
    assert response.status_code == 400
    assert response.json() == {
        "missingfields": ["startdate"],
        "error": "Additional fields are required.",
    }
    both = api.get(BOOKED)
    assert both.json()["missingfields"] == ["startdate", "enddate"]


@pytest.mark.parametrize("bad", ["2026-01-01", "13/01/2026", "02/30/2026", "01/01/26", "today"])
def test_malformed_dates_are_400(api: Api, bad: str) -> None:
    response = api.get(BOOKED, {"startdate": bad, "enddate": "12/31/2026"})
    assert response.status_code == 400
    assert response.json()["fields"] == ["startdate"]
    assert response.json()["error"] == "Invalid value for startdate."


def test_dates_are_inclusive(api: Api) -> None:
    day = booked(api)[0]["date"]
    same_day = booked(api, startdate=day, enddate=day)
    assert same_day and {a["date"] for a in same_day} == {day}


def test_departmentid_and_providerid_filters(api: Api) -> None:
    everything = booked(api, showcancelled="true")
    providers = sorted({a["providerid"] for a in everything})[:2]
    by_provider = booked(api, showcancelled="true", providerid=",".join(providers))
    assert by_provider == [a for a in everything if a["providerid"] in providers]
    by_department = booked(api, showcancelled="true", departmentid="1")
    assert by_department == [a for a in everything if a["departmentid"] == "1"]


def test_appointmentstatus_filter(api: Api) -> None:
    open_slots = booked(api, appointmentstatus="o")
    assert open_slots and all(a["appointmentstatus"] == "o" for a in open_slots)
    assert all("patientid" not in a for a in open_slots)


def test_lastmodified_window(api: Api) -> None:
    everything = booked(api, showcancelled="true")
    stamps = sorted(
        dt.datetime.strptime(a["lastmodified"], "%m/%d/%Y %H:%M:%S") for a in everything
    )
    middle = stamps[len(stamps) // 2]
    since = middle.strftime("%m/%d/%Y %H:%M:%S")
    newer = booked(api, showcancelled="true", startlastmodified=since)
    assert len(newer) == sum(1 for s in stamps if s >= middle)
    window = booked(
        api, showcancelled="true", startlastmodified="01/01/2020 00:00:00", endlastmodified=since
    )
    assert len(window) == sum(1 for s in stamps if s <= middle)


def test_endlastmodified_requires_startlastmodified(api: Api) -> None:
    response = api.get(BOOKED, {**ALL_DAYS, "endlastmodified": "01/01/2026 00:00:00"})
    assert response.status_code == 400
    assert response.json()["missingfields"] == ["startlastmodified"]
    bad = api.get(BOOKED, {**ALL_DAYS, "startlastmodified": "01/01/2026"})
    assert bad.status_code == 400


def test_hidden_departments_need_showalldepartments(api: Api) -> None:
    visible = api.ok(f"/v1/{PRACTICE}/departments")["departments"]
    everything = api.ok(f"/v1/{PRACTICE}/departments", {"showalldepartments": "true"})[
        "departments"
    ]
    hidden = set(api.server.truth()["hiddendepartmentids"])
    assert (
        hidden
        and {d["departmentid"] for d in everything} - {d["departmentid"] for d in visible} == hidden
    )


def test_providerlist_flag_adds_provider_ids(api: Api) -> None:
    plain = api.ok(f"/v1/{PRACTICE}/departments")["departments"]
    listed = api.ok(f"/v1/{PRACTICE}/departments", {"providerlist": "true"})["departments"]
    assert all("providerlist" not in d for d in plain)
    assert all(isinstance(d["providerlist"], list) and d["providerlist"] for d in listed)


def test_nonpatient_types_hidden_by_default(api: Api) -> None:
    default = api.ok(f"/v1/{PRACTICE}/appointmenttypes")["appointmenttypes"]
    everything = api.ok(f"/v1/{PRACTICE}/appointmenttypes", {"hidenonpatient": "false"})[
        "appointmenttypes"
    ]
    assert all(t["patient"] for t in default)
    assert any(not t["patient"] for t in everything)
    generic_hidden = api.ok(f"/v1/{PRACTICE}/appointmenttypes", {"hidegeneric": "true"})[
        "appointmenttypes"
    ]
    assert generic_hidden and not any(t["generic"] for t in generic_hidden)


def test_showallproviderids_adds_otherprovideridlist(api: Api) -> None:
    plain = api.ok(f"/v1/{PRACTICE}/providers")["providers"]
    full = api.ok(f"/v1/{PRACTICE}/providers", {"showallproviderids": "true"})["providers"]
    assert not any("otherprovideridlist" in p for p in plain)
    assert any(p.get("otherprovideridlist") for p in full)


def test_single_item_gets_return_one_element_arrays(api: Api) -> None:
    truth = api.server.truth()
    provider = truth["providers"][0]
    hidden = truth["hiddendepartmentids"][0]
    nonpatient = next(t for t in truth["appointmenttypes"] if not t["patient"])
    cancelled = next(a for a in truth["appointments"] if a["appointmentstatus"] == "x")
    assert (
        api.ok(f"/v1/{PRACTICE}/providers/{provider['providerid']}")[0]["lastname"]
        == provider["lastname"]
    )
    assert api.ok(f"/v1/{PRACTICE}/departments/{hidden}")[0]["departmentid"] == hidden
    assert api.ok(f"/v1/{PRACTICE}/appointmenttypes/{nonpatient['appointmenttypeid']}") == [
        nonpatient
    ]
    assert api.ok(f"/v1/{PRACTICE}/appointments/{cancelled['appointmentid']}") == [cancelled]


@pytest.mark.parametrize(
    "path", ["providers/1", "departments/999", "appointmenttypes/1", "appointments/42"]
)
def test_single_item_unknown_id_is_404(api: Api, path: str) -> None:
    response = api.get(f"/v1/{PRACTICE}/{path}")
    assert response.status_code == 404
    assert response.json()["error"].startswith("Invalid ")
