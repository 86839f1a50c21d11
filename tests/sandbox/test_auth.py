"""Token endpoint, bearer checks and the practice-level error answers."""

from __future__ import annotations

import base64
import http.client
import time

import pytest

from sandbox import FaultConfig
from sandbox.config import ConfigError
from sandbox.testing import serve_sandbox
from tests.sandbox.conftest import PRACTICE, Api, make_config


def test_token_by_http_basic_has_the_documented_shape(api: Api) -> None:
    response = api.mint(
        data={"grant_type": "client_credentials", "scope": "athena/service/Athenanet.MDP.*"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "athena/service/Athenanet.MDP.*"
    assert len(body["access_token"]) > 20
    assert response.headers["Cache-Control"] == "no-store"


def test_token_by_form_body_credentials(api: Api) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    response = api.mint(auth=None, data=form)
    assert response.status_code == 200
    assert api.get(f"/v1/{PRACTICE}/ping", token=response.json()["access_token"]).status_code == 200


def test_scope_defaults_when_not_sent(api: Api) -> None:
    assert api.mint().json()["scope"] == "athena/service/Athenanet.MDP.*"


def test_bad_credentials_are_invalid_client(api: Api) -> None:
    for auth in (("sandbox-client", "wrong"), ("someone", "sandbox-secret")):
        response = api.mint(auth=auth)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert "error_description" in response.json()
    assert api.mint(auth=None).status_code == 401
    garbage = {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
    assert api.mint(auth=None, headers=garbage).status_code == 401


def test_grant_type_is_required_and_must_be_client_credentials(api: Api) -> None:
    missing = api.mint(data={})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    wrong = api.mint(data={"grant_type": "password"})
    assert (wrong.status_code, wrong.json()["error"]) == (400, "unsupported_grant_type")


def test_more_mints_per_minute_than_allowed_get_429(api: Api) -> None:
    statuses = [api.mint().status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    limited = api.mint()
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert api.server.stats()["token_mints"] == 5


def test_failed_credentials_do_not_use_up_the_mint_budget(api: Api) -> None:
    for _ in range(6):
        api.mint(auth=("sandbox-client", "wrong"))
    assert api.mint().status_code == 200


def test_missing_or_unknown_bearer_is_401(api: Api) -> None:
    bare = api.http.get(f"{api.url}/v1/{PRACTICE}/ping", timeout=10)
    assert bare.status_code == 401
    assert bare.json()["error"] == "Developer Inactive"
    assert api.get(f"/v1/{PRACTICE}/ping", token="not-a-token").status_code == 401


def test_tokens_really_expire() -> None:
    with serve_sandbox(make_config(faults=FaultConfig(token_ttl_seconds=1))) as server:
        api = Api(server)
        minted = api.mint().json()
        assert minted["expires_in"] == 1
        assert api.get(f"/v1/{PRACTICE}/ping", token=minted["access_token"]).status_code == 200
        time.sleep(1.1)
        expired = api.get(f"/v1/{PRACTICE}/ping", token=minted["access_token"])
        assert expired.status_code == 401
        assert "expired" in expired.json()["detailedmessage"]


def test_expire_tokens_admin_route_expires_every_token(api: Api) -> None:
    assert api.get(f"/v1/{PRACTICE}/ping").status_code == 200
    assert api.admin("POST", "tokens/expire").json() == {"expired": 1}
    assert api.get(f"/v1/{PRACTICE}/ping").status_code == 401
    fresh = api.mint().json()["access_token"]
    assert api.get(f"/v1/{PRACTICE}/ping", token=fresh).status_code == 200


def test_forbidden_practice_is_401_incorrect_permissions(api: Api) -> None:
    response = api.get("/v1/1128700/departments")
    assert response.status_code == 401
    assert response.json() == {"error": "Incorrect permissions.", "detailedmessage": "Bad auth."}


def test_unknown_practice_is_404_invalid_practice(api: Api) -> None:
    response = api.get("/v1/4242/providers")
    assert response.status_code == 404
    assert response.json() == {
        "error": "Invalid practice.",
        "detailedmessage": "The practice ID does not exist.",
    }


def test_unknown_paths_and_methods_are_404(api: Api) -> None:
    for path in (
        f"/v1/{PRACTICE}/patients",
        f"/v1/{PRACTICE}/providers/1/x",
        "/v2/x",
        "/v1/abc/ping",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "Unknown API path."
    posted = api.http.post(
        f"{api.url}/v1/{PRACTICE}/appointments/booked",
        headers={"Authorization": f"Bearer {api.token}"},
        timeout=10,
    )
    assert posted.status_code == 404


def test_ping_pongs(api: Api) -> None:
    assert api.ok(f"/v1/{PRACTICE}/ping") == {"Pong": "true"}


def test_connection_is_kept_alive(api: Api) -> None:
    host, port = api.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Authorization": f"Bearer {api.token}"}
    connection.request("GET", f"/v1/{PRACTICE}/ping", headers=headers)
    first = connection.getresponse()
    assert (first.status, first.read()) == (200, b'{"Pong":"true"}')
    sock = connection.sock
    connection.request("GET", f"/v1/{PRACTICE}/ping", headers=headers)
    second = connection.getresponse()
    assert second.status == 200 and second.read()
    assert connection.sock is sock
    connection.close()


def test_an_empty_practice_exists_is_listed_and_holds_nothing() -> None:
    with serve_sandbox(make_config(empty_practices=("195901",))) as server:
        api = Api(server)
        listed = api.ok("/v1/1/practiceinfo")["practiceinfo"]
        assert [p["practiceid"] for p in listed] == [PRACTICE, "195901"]
        assert api.ok("/v1/195901/ping") == {"Pong": "true"}
        for path, key in (
            ("/departments", "departments"),
            ("/providers", "providers"),
            ("/appointmenttypes", "appointmenttypes"),
        ):
            assert api.ok(f"/v1/195901{path}") == {"totalcount": 0, key: []}
        booked = api.ok(
            "/v1/195901/appointments/booked",
            {"departmentid": "1", "startdate": "01/01/2026", "enddate": "12/31/2026"},
        )
        assert booked == {"totalcount": 0, "appointments": []}
        assert api.ok(f"/v1/{PRACTICE}/departments")["totalcount"] > 0
        api.http.close()


def test_an_empty_practice_cannot_also_be_forbidden() -> None:
    with pytest.raises(ConfigError, match="empty practice"):
        make_config(empty_practices=("1128700",))


def test_a_forbidden_endpoint_is_403_in_its_practice_only() -> None:
    config = make_config(
        practices=(PRACTICE, "195901"), forbidden_endpoints=(f"{PRACTICE}:/appointmenttypes",)
    )
    with serve_sandbox(config) as server:
        api = Api(server)
        for path in ("/appointmenttypes", "/appointmenttypes/82"):
            answer = api.get(f"/v1/{PRACTICE}{path}")
            assert answer.status_code == 403
            assert answer.json()["error"] == "Forbidden."
        assert api.get(f"/v1/{PRACTICE}/providers").status_code == 200
        assert api.get("/v1/195901/appointmenttypes").status_code == 200
        assert api.admin("GET", "config").json()["forbidden_endpoints"] == [
            f"{PRACTICE}:/appointmenttypes"
        ]
        api.http.close()


@pytest.mark.parametrize("entry", ["/appointmenttypes", "195900:appointmenttypes", "x:/a", "1:/"])
def test_a_forbidden_endpoint_must_name_practice_and_path(entry: str) -> None:
    with pytest.raises(ConfigError, match="PRACTICEID:/path"):
        make_config(forbidden_endpoints=(entry,))
