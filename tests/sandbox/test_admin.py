"""Mutations between runs, request statistics and the ground truth."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sandbox import SandboxServer
from tests.sandbox.conftest import ALL_DAYS, BOOKED, PRACTICE, Api, make_config

EVERYTHING = {**ALL_DAYS, "showcancelled": "true", "limit": "5000"}


def by_id(api: Api) -> dict[str, Any]:
    return {a["appointmentid"]: a for a in api.ok(BOOKED, EVERYTHING)["appointments"]}


def test_mutate_reports_and_applies_every_change(api: Api) -> None:
    before = by_id(api)
    response = api.admin(
        "POST",
        "mutate",
        json={"practiceid": PRACTICE, "cancel": 3, "modify": 4, "delete": 2, "add": 5},
    )
    assert response.status_code == 200
    change = response.json()
    after = by_id(api)
    stamp = change["lastmodified"]
    assert (
        len(change["cancelled"]) == 3 and len(change["deleted"]) == 2 and len(change["added"]) == 5
    )
    for appointment_id in change["cancelled"]:
        assert before[appointment_id]["appointmentstatus"] == "f"
        assert after[appointment_id]["appointmentstatus"] == "x"
        assert (
            after[appointment_id]["cancelleddatetime"]
            == stamp
            == after[appointment_id]["lastmodified"]
        )
    for modified in change["modified"]:
        row = after[modified["appointmentid"]]
        ((field, values),) = modified["changes"].items()
        assert before[modified["appointmentid"]][field] == values["old"]
        assert row[field] == values["new"] != values["old"]
        assert row["lastmodified"] == stamp
    for appointment_id in change["deleted"]:
        assert appointment_id not in after
        assert api.get(f"/v1/{PRACTICE}/appointments/{appointment_id}").status_code == 404
    for appointment_id in change["added"]:
        assert appointment_id not in before
        assert after[appointment_id]["appointmentstatus"] == "f"
    assert len(after) == len(before) - 2 + 5
    truth = api.server.truth()
    assert truth["deletedappointmentids"] == change["deleted"]


def test_cancelled_rows_drop_out_of_the_default_listing(api: Api) -> None:
    default = {
        a["appointmentid"] for a in api.ok(BOOKED, {**ALL_DAYS, "limit": "5000"})["appointments"]
    }
    cancelled = api.server.mutate(cancel=2)["cancelled"]
    now_default = {
        a["appointmentid"] for a in api.ok(BOOKED, {**ALL_DAYS, "limit": "5000"})["appointments"]
    }
    assert default - now_default == set(cancelled)


def test_mutations_are_found_by_lastmodified(api: Api) -> None:
    change = api.server.mutate(cancel=1, modify=2, add=1)
    since = (dt.datetime.strptime(change["lastmodified"], "%m/%d/%Y %H:%M:%S")).strftime(
        "%m/%d/%Y %H:%M:%S"
    )
    rows = api.ok(BOOKED, {**EVERYTHING, "startlastmodified": since})["appointments"]
    expected = (
        set(change["cancelled"])
        | {m["appointmentid"] for m in change["modified"]}
        | set(change["added"])
    )
    assert {a["appointmentid"] for a in rows} == expected


def test_mutate_with_a_seed_is_reproducible() -> None:
    changes = [
        SandboxServer(make_config()).mutate(cancel=2, modify=2, delete=2, add=2, seed=99)
        for _ in range(2)
    ]
    for change in changes:
        change.pop("lastmodified")
        for modified in change["modified"]:
            assert modified["changes"]
    assert changes[0] == changes[1]


def test_bad_mutate_requests(api: Api) -> None:
    assert api.admin("POST", "mutate", json={"cancel": -1}).status_code == 400
    assert api.admin("POST", "mutate", json={"explode": 1}).status_code == 400
    assert api.admin("POST", "mutate", data=b"{not json").status_code == 400
    assert api.admin("POST", "mutate", json={"practiceid": "4242", "cancel": 1}).status_code == 404
    assert api.admin("GET", "nowhere").status_code == 404


def test_stats_count_by_template_status_practice_and_mints(api: Api) -> None:
    assert api.token  # minted before the reset
    api.admin("POST", "stats/reset")
    api.get(f"/v1/{PRACTICE}/providers")
    api.get(f"/v1/{PRACTICE}/providers/999999")
    api.get(BOOKED)
    api.get("/v1/1128700/providers")
    stats = api.admin("GET", "stats").json()
    assert stats["token_mints"] == 0
    assert stats["requests"]["/v1/{practiceid}/providers"] == {"200": 1, "401": 1}
    assert stats["requests"]["/v1/{practiceid}/providers/{providerid}"] == {"404": 1}
    assert stats["requests"]["/v1/{practiceid}/appointments/booked"] == {"400": 1}
    assert stats["practices"] == {PRACTICE: {"200": 1, "400": 1, "404": 1}, "1128700": {"401": 1}}
    assert stats["total"] == 4
    api.mint()
    assert api.server.stats()["token_mints"] == 1
    assert api.server.stats()["requests"]["/oauth2/v1/token"] == {"200": 1}


def test_stats_never_contain_tokens(api: Api) -> None:
    api.get(f"/v1/{PRACTICE}/ping")
    assert api.token not in api.admin("GET", "stats").text


def test_truth_over_http_matches_the_python_call(api: Api) -> None:
    over_http = api.admin("GET", "truth", params={"practiceid": PRACTICE}).json()
    assert over_http == api.server.truth(PRACTICE)
    assert set(over_http) == {
        "practiceid",
        "practiceinfo",
        "providers",
        "departments",
        "hiddendepartmentids",
        "appointmenttypes",
        "appointments",
        "deletedappointmentids",
        "malformed",
    }
    served = api.ok(BOOKED, EVERYTHING)["appointments"]
    assert served == over_http["appointments"]


def test_cached_pages_are_invalidated_by_mutate(api: Api) -> None:
    first = api.ok(BOOKED, EVERYTHING)
    assert api.ok(BOOKED, EVERYTHING) == first
    api.server.mutate(delete=1)
    assert api.ok(BOOKED, EVERYTHING)["totalcount"] == first["totalcount"] - 1


def test_config_route_describes_what_is_served(api: Api) -> None:
    config = api.admin("GET", "config").json()
    assert config["practices"] == [PRACTICE]
    assert config["anchor_date"] == "03/01/2026"
    assert (config["first_day"], config["last_day"]) == ("02/09/2026", "04/09/2026")
