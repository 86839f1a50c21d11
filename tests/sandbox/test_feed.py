"""The changed-data feed and the multi-department listing, over HTTP (ATHENA_API.md §2.5, §2.8)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox import SandboxServer
from sandbox.feed import EVENTS, NOT_SUBSCRIBED
from sandbox.testing import serve_sandbox
from tests.sandbox.conftest import ALL_DAYS, ANCHOR, BOOKED, PRACTICE, Api, make_config

FEED = f"/v1/{PRACTICE}/appointments/changed"
SUBSCRIPTION = f"{FEED}/subscription"
MULTIPLE = f"{BOOKED}/multipledepartment"


def call(api: Api, method: str, path: str, **kwargs: Any) -> requests.Response:
    """A request with the bearer token (POST bodies are form-encoded, as athenahealth takes)."""
    headers = {"Authorization": f"Bearer {api.token}"}
    return api.http.request(method, f"{api.url}{path}", headers=headers, timeout=10, **kwargs)


def feed(api: Api, **params: str) -> dict[str, Any]:
    response = api.get(FEED, {"limit": "1000", **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [a["appointmentid"] for a in body["appointments"]]


@pytest.fixture
def subscribed() -> Iterator[Api]:
    """A subscribed practice whose visits reach 30 days before the anchor."""
    with serve_sandbox(make_config(days=90, appointments=1500)) as server:
        api = Api(server)
        assert call(api, "POST", SUBSCRIPTION).json() == {"success": True}
        yield api
        api.http.close()


def test_reading_without_a_subscription_is_the_documented_403(api: Api) -> None:
    response = api.get(FEED, {"limit": "10"})
    assert response.status_code == 403
    assert response.json() == {"error": NOT_SUBSCRIBED}
    assert api.ok(SUBSCRIPTION) == {"status": "INACTIVE", "subscriptions": []}
    events = api.ok(f"{SUBSCRIPTION}/events")["subscriptions"]
    assert [e["eventname"] for e in events] == list(EVENTS)


def test_subscription_lifecycle_active_partial_and_deleted(api: Api) -> None:
    assert call(api, "POST", SUBSCRIPTION, data={"eventname": "CheckIn"}).status_code == 200
    assert api.ok(SUBSCRIPTION) == {
        "status": "Partial",
        "subscriptions": [{"eventname": "CheckIn"}],
    }
    assert call(api, "POST", SUBSCRIPTION).status_code == 200
    status = api.ok(SUBSCRIPTION)
    assert status["status"] == "ACTIVE" and len(status["subscriptions"]) == len(EVENTS)
    assert feed(api)["appointments"] == []
    bad = call(api, "POST", SUBSCRIPTION, data={"eventname": "NoSuchEvent"})
    assert bad.status_code == 400 and bad.json()["error"] == "Invalid eventname."
    assert call(api, "DELETE", SUBSCRIPTION).json() == {"success": True}
    assert api.get(FEED).status_code == 403


def test_activation_delay_on_the_sandbox_clock() -> None:
    with serve_sandbox(make_config(subscription_activation_seconds=600)) as server:
        api = Api(server)
        assert call(api, "POST", SUBSCRIPTION).status_code == 200
        assert api.ok(SUBSCRIPTION)["status"] == "ACTIVE"  # asked for, not yet readable
        server.mutate(PRACTICE, modify=2)  # while activating: never queued
        assert api.get(FEED).status_code == 403
        server.advance_clock(600)
        assert feed(api)["appointments"] == []
        changed = server.mutate(PRACTICE, modify=1)["modified"][0]["appointmentid"]
        assert ids(feed(api)) == [changed]


def test_every_mutation_kind_appears_deletions_do_not(subscribed: Api) -> None:
    server = subscribed.server
    done = server.mutate(
        PRACTICE, cancel=1, modify=2, add=1, checkin=1, checkout=1, cancel_past=1, delete=2
    )
    body = feed(subscribed)
    expected = [*done["cancelled"], *(m["appointmentid"] for m in done["modified"])]
    expected += [*done["checkin"], *done["checkout"], *done["cancel_past"], *done["added"]]
    assert all(done[kind] for kind in ("checkin", "checkout", "cancel_past", "added"))
    assert sorted(ids(body)) == sorted(expected) and body["totalcount"] == 7
    assert not set(done["deleted"]) & set(ids(body))
    truth = {a["appointmentid"]: a for a in server.truth()["appointments"]}
    for record in body["appointments"]:
        assert record == truth[record["appointmentid"]]  # the state right after the change
        assert record["lastmodified"] == done["lastmodified"]


def test_past_visit_changes_touch_only_old_visits(subscribed: Api) -> None:
    server = subscribed.server
    done = server.mutate(PRACTICE, checkin=2, checkout=2, cancel_past=2, past_days=10)
    truth = {a["appointmentid"]: a for a in server.truth()["appointments"]}
    cutoff = ANCHOR - dt.timedelta(days=10)
    for kind, status, field in (
        ("checkin", "2", "checkindatetime"),
        ("checkout", "3", "checkoutdatetime"),
        ("cancel_past", "x", "cancelleddatetime"),
    ):
        assert len(done[kind]) == 2
        for appointment_id in done[kind]:
            row = truth[appointment_id]
            assert dt.datetime.strptime(row["date"], "%m/%d/%Y").date() < cutoff
            assert row["appointmentstatus"] == status
            assert row[field] == row["lastmodified"] == done["lastmodified"]


def test_reads_are_destructive_unless_leaveunprocessed(subscribed: Api) -> None:
    server = subscribed.server
    server.mutate(PRACTICE, modify=5)
    peek = feed(subscribed, leaveunprocessed="true")
    assert len(peek["appointments"]) == 5
    first = feed(subscribed, limit="3")
    assert len(first["appointments"]) == 3 and first["totalcount"] == 5 and "next" in first
    second = feed(subscribed, limit="3")
    assert len(second["appointments"]) == 2 and "next" not in second
    assert ids(first) + ids(second) == ids(peek)
    assert feed(subscribed)["appointments"] == []
    assert server.stats()["feeds"][PRACTICE] == {"unprocessed": 0, "processed": 5}


def eastern(server: SandboxServer, minutes: float) -> str:
    """The sandbox clock's Eastern wall time, ``minutes`` from now, as MM/DD/YYYY HH:MM:SS."""
    moment = server.sandbox.clock.eastern() + dt.timedelta(minutes=minutes)
    return moment.strftime("%m/%d/%Y %H:%M:%S")


def test_processed_changes_are_served_again_for_a_span(subscribed: Api) -> None:
    server = subscribed.server
    server.mutate(PRACTICE, modify=3)
    served = ids(feed(subscribed))
    span = {"showprocessedstartdatetime": eastern(server, -5)}
    span["showprocessedenddatetime"] = eastern(server, 5)
    assert ids(feed(subscribed, **span)) == served
    assert ids(feed(subscribed, **span, limit="2", offset="2")) == served[2:]
    assert ids(feed(subscribed, **span)) == served  # replaying marks nothing
    before = {**span, "showprocessedenddatetime": eastern(server, -1)}
    assert feed(subscribed, **before)["appointments"] == []
    server.advance_clock(3600)
    subscribed.renew()  # an hour on, the sandbox's token expired
    assert ids(feed(subscribed, **span)) == served  # a span in the past
    missing = subscribed.get(
        FEED, {"showprocessedstartdatetime": span["showprocessedstartdatetime"]}
    )
    assert missing.status_code == 400
    assert missing.json()["missingfields"] == ["showprocessedenddatetime"]


def test_processed_changes_are_served_again_only_for_the_retention() -> None:
    config = make_config(days=90, appointments=1500, processed_retention_seconds=3600)
    with serve_sandbox(config) as server:
        api = Api(server)
        assert call(api, "POST", SUBSCRIPTION).status_code == 200
        server.mutate(PRACTICE, modify=2)
        first = ids(feed(api))
        server.advance_clock(1800)
        server.mutate(PRACTICE, modify=1)
        second = ids(feed(api))
        span = {"showprocessedstartdatetime": eastern(server, -60)}
        span["showprocessedenddatetime"] = eastern(server, 1)
        assert ids(feed(api, **span)) == first + second
        server.advance_clock(1700)  # the first read is 58 minutes old
        assert ids(feed(api, **span)) == first + second
        server.advance_clock(200)  # 62 minutes: forgotten; the second read is 32 minutes old
        api.renew()  # the first token (an hour's) expired on the sandbox's clock
        assert ids(feed(api, **span)) == second
        server.advance_clock(1800)
        assert feed(api, **span)["appointments"] == []
        assert server.stats()["feeds"][PRACTICE] == {"unprocessed": 0, "processed": 3}
        api.http.close()


def test_processed_changes_are_kept_for_ever_by_default(subscribed: Api) -> None:
    server = subscribed.server
    server.mutate(PRACTICE, modify=2)
    served = ids(feed(subscribed))
    span = {"showprocessedstartdatetime": eastern(server, -1)}
    server.advance_clock(30 * 86400)
    subscribed.renew()
    span["showprocessedenddatetime"] = eastern(server, 0)
    assert ids(feed(subscribed, **span)) == served


def test_multipledepartment_reads_repeated_departmentid(api: Api) -> None:
    everything = {**ALL_DAYS, "showcancelled": "true", "limit": "5000"}
    one = {d: ids(api.ok(BOOKED, {**everything, "departmentid": d})) for d in ("1", "2", "3")}
    both = api.ok(MULTIPLE, [*everything.items(), ("departmentid", "1"), ("departmentid", "3")])
    assert sorted(ids(both)) == sorted(one["1"] + one["3"])
    paged = api.all_pages(MULTIPLE, "appointments", {**everything, "departmentid": "1,2"}, limit=50)
    assert [a["appointmentid"] for a in paged] == ids(
        api.ok(MULTIPLE, [*everything.items(), ("departmentid", "1"), ("departmentid", "2")])
    )
    missing = api.get(MULTIPLE, ALL_DAYS)
    assert missing.status_code == 400 and missing.json()["missingfields"] == ["departmentid"]
    stats = api.server.stats()["requests"]
    assert stats["/v1/{practiceid}/appointments/booked/multipledepartment"]["200"] >= 3


@pytest.fixture
def refusing() -> Iterator[Api]:
    config = make_config(
        forbidden_endpoints=(f"{PRACTICE}:/appointments/booked/multipledepartment",),
        unserved_endpoints=(f"{PRACTICE}:/appointments/changed",),
    )
    with serve_sandbox(config) as server:
        yield Api(server)


def test_an_endpoint_can_be_refused_or_missing(refusing: Api) -> None:
    assert refusing.get(MULTIPLE, {**ALL_DAYS, "departmentid": "1"}).status_code == 403
    assert refusing.get(BOOKED, {**ALL_DAYS, "departmentid": "1"}).status_code == 200
    missing = refusing.get(FEED)
    assert missing.status_code == 404 and missing.json() == {"error": "Unknown API path."}
    assert call(refusing, "POST", SUBSCRIPTION).status_code == 404


def test_feed_requests_are_counted(subscribed: Api) -> None:
    server: SandboxServer = subscribed.server
    server.reset_stats()
    feed(subscribed)
    subscribed.ok(SUBSCRIPTION)
    requests_by_path = server.stats()["requests"]
    assert requests_by_path["/v1/{practiceid}/appointments/changed"] == {"200": 1}
    assert requests_by_path["/v1/{practiceid}/appointments/changed/subscription"] == {"200": 1}
    assert call(subscribed, "PUT", SUBSCRIPTION).status_code == 404


def test_feed_appointment_notes_ride_on_feed_records_only() -> None:
    config = make_config(feed_appointment_notes=True)
    with serve_sandbox(config) as server:
        api = Api(server)
        assert call(api, "POST", SUBSCRIPTION).status_code == 200
        changed = server.mutate(PRACTICE, modify=2, seed=1)["modified"]
        first = {a["appointmentid"]: a for a in feed(api)["appointments"]}
        assert set(first) == {m["appointmentid"] for m in changed}
        for ident, record in first.items():
            (note,) = record.pop("appointmentnotes")
            assert note["notetext"] and note["appointmentnoteid"]
            assert api.ok(f"/v1/{PRACTICE}/appointments/{ident}") == [record]
        booked = api.ok(BOOKED, {**ALL_DAYS, "showcancelled": "true", "limit": "5000"})
        assert not any("appointmentnotes" in a for a in booked["appointments"])
        api.http.close()
    with serve_sandbox(make_config()) as plain:
        api = Api(plain)
        assert call(api, "POST", SUBSCRIPTION).status_code == 200
        plain.mutate(PRACTICE, modify=2, seed=1)
        assert not any("appointmentnotes" in a for a in feed(api)["appointments"])
        api.http.close()


def test_multi_department_first_only_answers_the_first_departmentid_alone(api: Api) -> None:
    everything = {**ALL_DAYS, "showcancelled": "true", "limit": "5000"}
    asked = [*everything.items(), ("departmentid", "3"), ("departmentid", "1")]
    one = {d: ids(api.ok(BOOKED, {**everything, "departmentid": d})) for d in ("1", "3")}
    assert sorted(ids(api.ok(MULTIPLE, asked))) == sorted(one["1"] + one["3"])
    response = requests.post(
        f"{api.url}/_sandbox/faults", json={"multi_department_first_only": True}, timeout=10
    )
    assert response.json()["multi_department_first_only"] is True
    assert ids(api.ok(MULTIPLE, asked)) == one["3"]  # the first sent, silently alone
    assert ids(api.ok(MULTIPLE, {**everything, "departmentid": "1,3"})) == one["1"]
    # /appointments/booked itself is untouched.
    assert sorted(ids(api.ok(BOOKED, {**everything, "departmentid": "1,3"}))) == sorted(
        one["1"] + one["3"]
    )
    bad = requests.post(
        f"{api.url}/_sandbox/faults", json={"multi_department_first_only": 1}, timeout=10
    )
    assert bad.status_code == 400
