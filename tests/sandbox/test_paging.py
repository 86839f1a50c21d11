"""Paging exactly as athenahealth formats it (ATHENA_API.md §3)."""

from __future__ import annotations

import pytest

from sandbox.testing import serve_sandbox
from tests.sandbox.conftest import ALL_DAYS, BOOKED, PRACTICE, Api, make_config

# (path, collection, params that list everything, id field)
ENDPOINTS = [
    (f"/v1/{PRACTICE}/providers", "providers", {}, "providerid"),
    (f"/v1/{PRACTICE}/departments", "departments", {"showalldepartments": "true"}, "departmentid"),
    (
        f"/v1/{PRACTICE}/appointmenttypes",
        "appointmenttypes",
        {"hidenonpatient": "false"},
        "appointmenttypeid",
    ),
    (BOOKED, "appointments", {**ALL_DAYS, "showcancelled": "true"}, "appointmentid"),
    (f"/v1/{PRACTICE}/practiceinfo", "practiceinfo", {}, "practiceid"),
    ("/v1/1/practiceinfo", "practiceinfo", {}, "practiceid"),
]


@pytest.mark.parametrize(("path", "collection", "params", "id_field"), ENDPOINTS)
def test_every_endpoint_pages_through_all_records(
    api: Api, path, collection, params, id_field
) -> None:
    everything = api.ok(path, {**params, "limit": "5000"})
    total = everything["totalcount"]
    assert total == len(everything[collection]) > 0
    assert "next" not in everything and "previous" not in everything
    for limit in (1, 3, 7) if total < 100 else (7, 100, total):
        paged = api.all_pages(path, collection, params, limit)
        assert [r[id_field] for r in paged] == [r[id_field] for r in everything[collection]]


def test_next_link_is_relative_with_uppercase_echoed_params_and_lowercase_offset(api: Api) -> None:
    page = api.ok(
        BOOKED,
        {
            "departmentid": "1",
            "startdate": "01/01/2026",
            "enddate": "04/30/2026",
            "showcancelled": "false",
            "limit": "10",
        },
    )
    assert page["next"] == (
        f"/v1/{PRACTICE}/appointments/booked?DEPARTMENTID=1&ENDDATE=04%2F30%2F2026"
        "&SHOWCANCELLED=false&STARTDATE=01%2F01%2F2026&offset=10"
    )
    assert "previous" not in page
    assert len(page["appointments"]) == 10


def test_previous_link_points_one_page_back(api: Api) -> None:
    page = api.ok(f"/v1/{PRACTICE}/providers", {"limit": "4", "offset": "6"})
    assert page["previous"] == f"/v1/{PRACTICE}/providers?offset=2"
    assert page["next"] == f"/v1/{PRACTICE}/providers?offset=10"


def test_slashes_are_escaped_on_the_wire(api: Api) -> None:
    raw = api.get(f"/v1/{PRACTICE}/providers", {"limit": "2"}).content
    assert b'"next":"\\/v1\\/195900\\/providers?offset=2"' in raw


def test_total_an_exact_multiple_of_the_limit_has_no_next_on_the_last_page(api: Api) -> None:
    total = api.ok(f"/v1/{PRACTICE}/providers")["totalcount"]
    assert total == 12
    last = api.ok(f"/v1/{PRACTICE}/providers", {"limit": "4", "offset": "8"})
    assert len(last["providers"]) == 4
    assert "next" not in last
    assert len(api.all_pages(f"/v1/{PRACTICE}/providers", "providers", {}, 4)) == 12
    assert len(api.all_pages(f"/v1/{PRACTICE}/providers", "providers", {}, 6)) == 12


def test_empty_result_has_zero_total_and_no_links(api: Api) -> None:
    page = api.ok(BOOKED, {"startdate": "01/01/2030", "enddate": "01/31/2030"})
    assert page == {"totalcount": 0, "appointments": []}


def test_offset_past_the_end_returns_an_empty_page(api: Api) -> None:
    page = api.ok(f"/v1/{PRACTICE}/providers", {"offset": "50", "limit": "5"})
    assert page["totalcount"] == 12
    assert page["providers"] == []
    assert "next" not in page


def test_default_limit_is_1000_for_booked_appointments() -> None:
    with serve_sandbox(make_config(appointments=2500)) as server:
        page = Api(server).ok(BOOKED, {**ALL_DAYS, "showcancelled": "true"})
        assert page["totalcount"] == 2500
        assert len(page["appointments"]) == 1000
        assert page["next"].endswith("&offset=1000")


def test_limit_above_the_maximum_is_clamped_to_5000() -> None:
    with serve_sandbox(make_config(appointments=5100)) as server:
        page = Api(server).ok(BOOKED, {**ALL_DAYS, "showcancelled": "true", "limit": "9999"})
        assert len(page["appointments"]) == 5000
        assert page["next"].endswith("offset=5000")


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5"])
def test_a_bad_limit_is_400(api: Api, bad: str) -> None:
    response = api.get(f"/v1/{PRACTICE}/providers", {"limit": bad})
    assert response.status_code == 400
    assert response.json()["fields"] == ["limit"]


def test_a_bad_offset_is_400(api: Api) -> None:
    assert api.get(f"/v1/{PRACTICE}/providers", {"offset": "-3"}).status_code == 400


def test_v1_1_practiceinfo_lists_every_accessible_practice() -> None:
    with serve_sandbox(make_config(practices=("195900", "2000001"), appointments=10)) as server:
        body = Api(server).ok("/v1/1/practiceinfo")
        assert [p["practiceid"] for p in body["practiceinfo"]] == ["195900", "2000001"]
        assert body["practiceinfo"][0]["name"] == "athenahealth MDP Sandbox"
        assert Api(server).ok("/v1/2000001/practiceinfo")["totalcount"] == 1
