"""The one mapping from a response (or transport failure) to a value or an error."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest
import requests

from worker.athena.errors import AuthError, FatalError, RetriableError
from worker.athena.responses import decode_response, transport_error

PATIENT = "Jane Doe 1970-01-01 555-0100"


def response(
    status: int, body: Any = b"", *, content_type: str = "application/json", **headers: str
) -> requests.Response:
    """A requests.Response as the transport would hand it over."""
    resp = requests.Response()
    resp.status_code = status
    resp.reason = HTTPStatus(status).phrase
    resp._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp.headers["Content-Type"] = content_type
    resp.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    resp.request = requests.Request("GET", "http://127.0.0.1/v1/195900/x").prepare()
    resp.request.headers["X-Request-Id"] = "rid-1"
    return resp


def decode(resp: requests.Response, **kwargs: Any) -> Any:
    return decode_response(resp, path="/departments", practice_id="195900", **kwargs)


def test_success_returns_the_decoded_json() -> None:
    assert decode(response(200, {"totalcount": 0, "departments": []})) == {
        "totalcount": 0,
        "departments": [],
    }


def test_200_with_html_is_a_retriable_gateway_glitch() -> None:
    with pytest.raises(RetriableError) as caught:
        decode(response(200, b"<html>maintenance</html>", content_type="text/html"))
    assert "non-JSON (text/html) body where JSON was expected" in str(caught.value)
    assert caught.value.status == 200


def test_502_with_html_body_is_retriable_and_says_what_came_back() -> None:
    html = f"<html><body><h1>502 Bad Gateway</h1>{PATIENT}</body></html>".encode()
    with pytest.raises(RetriableError) as caught:
        decode(response(502, html, content_type="text/html; charset=utf-8"))
    message = str(caught.value)
    assert "502 Bad Gateway with a non-JSON (text/html) body" in message
    assert "path=/departments practice=195900" in message
    assert "request_id=rid-1" in message
    assert "<html>" not in message and PATIENT not in message


def test_503_with_empty_body_is_retriable() -> None:
    with pytest.raises(RetriableError, match="503 Service Unavailable with an empty body"):
        decode(response(503, b"", content_type=""))


@pytest.mark.parametrize(("value", "seconds"), [("7", 7.0), (None, None)])
def test_429_is_retriable_and_carries_retry_after(value: str | None, seconds: float | None) -> None:
    headers = {"Retry-After": value} if value else {}
    with pytest.raises(RetriableError, match="throttled: 429") as caught:
        decode(response(429, b"", **headers))
    assert caught.value.retry_after == seconds


def test_400_is_fatal_with_the_apis_own_error_text_only() -> None:
    body = {
        "missingfields": ["patientid"],
        "error": "Additional fields are required.",
        "x": PATIENT,
    }
    with pytest.raises(FatalError) as caught:
        decode(response(400, body))
    assert not isinstance(caught.value, AuthError | RetriableError)
    assert caught.value.api_error == "Additional fields are required."
    assert PATIENT not in str(caught.value)


def test_404_is_fatal_with_detailedmessage() -> None:
    body = {"error": "Invalid practice.", "detailedmessage": "The practice ID does not exist."}
    with pytest.raises(FatalError) as caught:
        decode(response(404, body))
    assert caught.value.detail == "The practice ID does not exist."
    assert "error='Invalid practice.'" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_auth_errors(status: int) -> None:
    body = {"detailedmessage": "Bad auth.", "error": "Incorrect permissions."}
    with pytest.raises(AuthError) as caught:
        decode(response(status, body))
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body><h1>Developer Over Qps</h1></body></html>", "text/html"),
        (b"<h1>Developer Over Rate</h1>", "text/html"),
        (b"Developer Over Qps", "text/plain"),
        (b'{"error": "Developer Over Qps"}', "application/json"),
    ],
)
def test_a_legacy_gateway_throttle_403_is_retriable(body: bytes, content_type: str) -> None:
    with pytest.raises(RetriableError, match="throttled: 403") as caught:
        decode(response(403, body, content_type=content_type, Retry_After="3"))
    assert caught.value.status == 403 and caught.value.retry_after == 3.0
    assert "<h1>" not in str(caught.value)


def test_a_403_naming_no_throttle_stays_an_auth_error() -> None:
    body = {"error": "Changed messages require setup (subscription) that has not been done."}
    with pytest.raises(AuthError) as caught:
        decode(response(403, body))
    assert caught.value.status == 403


def test_token_endpoint_400_is_an_auth_error() -> None:
    body = {"error": "invalid_client", "error_description": "Client authentication failed."}
    with pytest.raises(AuthError, match="token endpoint refused the credentials") as caught:
        decode(response(400, body), token_endpoint=True)
    assert caught.value.api_error == "invalid_client"
    assert caught.value.detail == "Client authentication failed."


def test_long_api_text_is_truncated() -> None:
    with pytest.raises(FatalError) as caught:
        decode(response(400, {"error": "x" * 5000}))
    assert caught.value.api_error is not None
    assert len(caught.value.api_error) <= 200


def test_non_object_json_error_body_is_handled() -> None:
    with pytest.raises(FatalError, match="404 Not Found") as caught:
        decode(response(404, ["nope"]))
    assert caught.value.api_error is None


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (requests.ConnectTimeout(), RetriableError, "connect timed out after 2s"),
        (requests.ReadTimeout(), RetriableError, "read timed out after 5s"),
        (requests.ConnectionError(), RetriableError, "connection failed (ConnectionError)"),
        (requests.exceptions.InvalidURL(), FatalError, "could not be sent (InvalidURL)"),
    ],
)
def test_transport_errors(exc: requests.RequestException, kind: type, text: str) -> None:
    error = transport_error(exc, path="/x", practice_id="195900", timeouts=(2.0, 5.0))
    assert type(error) is kind
    assert text in str(error)


def test_apigee_fault_bodies_give_faultstring_and_errorcode() -> None:
    body = {
        "fault": {
            "faultstring": "Spike arrest violation.",
            "detail": {"errorcode": "policies.ratelimit.SpikeArrestViolation"},
        }
    }
    with pytest.raises(RetriableError) as caught:
        decode(response(429, body, Retry_After="1"))
    assert caught.value.api_error == "Spike arrest violation."
    assert caught.value.detail == "policies.ratelimit.SpikeArrestViolation"
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize(
    "headers",
    [
        {"X_Mashery_Error_Code": "ERR_403_DEVELOPER_OVER_QPS"},
        {"X_Error_Detail_Header": "Account Over Rate Limit"},
    ],
)
def test_a_legacy_throttle_named_only_in_its_headers_is_retriable(headers: dict[str, str]) -> None:
    with pytest.raises(RetriableError, match="throttled: 403"):
        decode(response(403, b"", content_type="text/html", **headers))


@pytest.mark.parametrize(
    "body",
    [
        {"error": "Access denied: turnover rate report not enabled"},
        {"error": "Forbidden.", "detailedmessage": "The endpoint is not enabled for this key."},
    ],
)
def test_a_403_that_merely_mentions_a_rate_stays_an_auth_error(body: dict[str, str]) -> None:
    with pytest.raises(AuthError):
        decode(response(403, body))
