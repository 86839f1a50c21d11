"""Each fault switch, switched on and off at runtime, reproducible from its seed."""

from __future__ import annotations

import json
import time

from sandbox import FaultConfig
from tests.sandbox.conftest import ALL_DAYS, BOOKED, PRACTICE, Api

PING = f"/v1/{PRACTICE}/ping"


def outcomes(api: Api, n: int) -> list[tuple[int, str | None, bytes]]:
    answers = [api.get(PING) for _ in range(n)]
    return [(r.status_code, r.headers.get("Retry-After"), r.content) for r in answers]


def test_5xx_include_html_502_json_500_and_empty_503(api: Api) -> None:
    api.server.set_faults(error_rate=1.0, seed=11)
    answers = [api.get(PING) for _ in range(40)]
    by_status = {r.status_code: r for r in answers}
    assert set(by_status) == {500, 502, 503}
    assert by_status[502].headers["Content-Type"] == "text/html"
    assert by_status[502].text.startswith("<html>")
    assert by_status[500].json()["error"]
    assert by_status[503].content == b""


def test_faults_replay_identically_and_switch_off(api: Api) -> None:
    faults = FaultConfig(error_rate=0.3, rate_429=0.2, seed=7)
    api.server.set_faults(faults)
    first = outcomes(api, 30)
    api.server.set_faults(FaultConfig())
    assert {status for status, _, _ in outcomes(api, 10)} == {200}
    api.server.set_faults(faults)
    assert outcomes(api, 30) == first
    assert {status for status, _, _ in first} >= {200, 429}


def test_429_with_and_without_retry_after(api: Api) -> None:
    api.server.set_faults(rate_429=1.0, retry_after_share=1.0, retry_after_seconds=7)
    with_header = api.get(PING)
    assert (with_header.status_code, with_header.headers["Retry-After"]) == (429, "7")
    api.server.set_faults(rate_429=1.0, retry_after_share=0.0)
    without = api.get(PING)
    assert without.status_code == 429
    assert "Retry-After" not in without.headers


def test_rps_ceiling_answers_429_above_the_rate(api: Api) -> None:
    api.server.set_faults(rps_limit=3)
    statuses = [api.get(PING).status_code for _ in range(8)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    time.sleep(1.0)
    assert api.get(PING).status_code == 200


def test_rps_ceiling_is_per_practice(api: Api) -> None:
    api.server.set_faults(rps_limit=1)
    assert api.get(PING).status_code == 200
    assert api.get(PING).status_code == 429
    assert api.get("/v1/1/practiceinfo").status_code == 200


def test_latency_slows_every_api_answer(api: Api) -> None:
    api.server.set_faults(latency_ms=150)
    started = time.perf_counter()
    assert api.get(PING).status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_faults_leave_the_token_endpoint_and_admin_routes_alone(api: Api) -> None:
    api.server.set_faults(error_rate=1.0)
    assert api.mint().status_code == 200
    assert api.admin("GET", "stats").status_code == 200


def test_malformed_appointments_are_served_and_listed_in_truth(api: Api) -> None:
    params = {**ALL_DAYS, "showcancelled": "true", "limit": "5000"}
    clean = api.ok(BOOKED, params)["totalcount"]
    api.server.set_faults(malformed_appointments=10, seed=3)
    answer = api.get(BOOKED, params)
    rows = answer.json()["appointments"]  # the standard decoder reads a bare NaN/Infinity
    assert len(rows) == clean + 10
    broken = api.server.truth()["malformed"]
    assert len(broken) == 10
    assert {b["reason"] for b in broken} == {
        "missing appointmentid",
        "impossible date",
        "impossible starttime",
        "duration not a number",
        "departmentid is an object",
        "duration is NaN",
        "copay is Infinity",
        "negative duration",
    }
    assert sum(1 for r in rows if "appointmentid" not in r) == 2
    assert any(r["date"].startswith("02/30/") for r in rows)
    assert any(r["starttime"] == "25:61" for r in rows)
    assert any(r["duration"] == "abc" for r in rows)
    assert any(isinstance(r["departmentid"], dict) for r in rows)
    assert any(r["duration"] == -15 for r in rows)
    # Bare tokens on the wire, as a server that writes them would (not valid JSON).
    assert b'"duration":NaN,' in answer.content
    assert b'"copay":Infinity,' in answer.content
    api.server.set_faults(FaultConfig())
    assert api.ok(BOOKED, params)["totalcount"] == clean


def test_faults_switch_over_http(api: Api) -> None:
    response = api.admin("POST", "faults", json={"error_rate": 1, "html_502_share": 1})
    assert response.status_code == 200
    assert response.json()["error_rate"] == 1.0
    assert api.get(PING).status_code == 502
    assert api.admin("GET", "faults").json()["html_502_share"] == 1.0
    assert api.admin("POST", "faults", json={}).status_code == 200
    assert api.get(PING).status_code == 200


def test_bad_fault_payloads_are_400(api: Api) -> None:
    for payload in ({"error_rate": 2}, {"nope": 1}, {"latency_ms": "slow"}, [1]):
        response = api.admin("POST", "faults", json=payload)
        assert response.status_code == 400, payload
        assert response.json()["error"]


def test_short_token_ttl_over_http(api: Api) -> None:
    api.admin("POST", "faults", json={"token_ttl_seconds": 1})
    token = api.mint().json()
    assert token["expires_in"] == 1
    time.sleep(1.05)
    assert api.get(PING, token=token["access_token"]).status_code == 401


def test_legacy_gateway_throttle_is_a_403_html_over_qps_page(api: Api) -> None:
    api.server.set_faults(legacy_throttle_rate=1.0)
    answer = api.get(PING)
    assert (answer.status_code, answer.headers["Content-Type"]) == (403, "text/html")
    assert "<h1>Developer Over Qps</h1>" in answer.text
    assert answer.headers["X-Mashery-Error-Code"] == "ERR_403_DEVELOPER_OVER_QPS"


def test_listing_200s_that_are_not_the_envelope_take_turns(api: Api) -> None:
    providers = f"/v1/{PRACTICE}/providers"
    api.server.set_faults(envelope_error_rate=1.0)
    answers = [api.get(providers) for _ in range(6)]
    assert {a.status_code for a in answers} == {200}
    no_collection, truncated, empty, html, array, again = answers
    assert no_collection.json() == {"totalcount": 12}  # what gateways send mid-incident
    assert truncated.content and not _decodes(truncated.content)
    assert empty.content == b""
    assert html.headers["Content-Type"] == "text/html" and html.text.startswith("<html>")
    assert isinstance(array.json(), list) and len(array.json()) == 12
    assert "providers" not in again.json()  # the turn starts over
    assert api.get(PING).json() == {"Pong": "true"}  # only listings are spoiled
    api.server.set_faults(FaultConfig())
    assert len(api.ok(providers)["providers"]) == 12


def test_an_empty_listing_is_never_spoiled_into_a_valid_empty_page(api: Api) -> None:
    api.server.set_faults(envelope_error_rate=1.0)
    nothing = {"startdate": "01/01/2020", "enddate": "01/02/2020", "departmentid": "1"}
    answer = api.get(BOOKED, nothing)
    assert answer.status_code == 200 and not _decodes(answer.content)  # truncated instead


def _decodes(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
