"""Verdicts are pure: an error of the client's tree in, a plain-language reading out."""

from __future__ import annotations

import pytest

from worker.athena.errors import AthenaError, AuthError, FatalError, RetriableError
from worker.doctor.verdicts import api_failure, listed, token_failure


def _error(
    cls: type[AthenaError],
    status: int | None,
    api_error: str | None = None,
    detail: str | None = None,
    retry_after: float | None = None,
) -> AthenaError:
    return cls("x", status=status, api_error=api_error, detail=detail, retry_after=retry_after)


@pytest.mark.parametrize(
    ("error", "verdict", "step"),
    [
        (
            _error(AuthError, 401, "Incorrect permissions.", "Bad auth."),
            "practice not enabled for this key",
            "grant this key access to practice 7",
        ),
        (
            _error(AuthError, 401, "Developer Inactive"),
            "the key (developer app) is inactive",
            "developer portal",
        ),
        (_error(AuthError, 401, "Invalid token"), "a valid token was refused", "same environment"),
        (
            _error(AuthError, 403, "Changed messages require setup"),
            "this key may not call /departments for this practice",
            "enable /departments",
        ),
        (
            _error(FatalError, 404, "Invalid practice.", "The practice ID does not exist."),
            "practice does not exist",
            "195900",
        ),
        (_error(FatalError, 404, "Not found"), "/departments not found", "ATHENA_BASE_URL"),
        (_error(RetriableError, 429), "API rate limited", "ATHENA_RATE_LIMIT_RPS"),
        (
            _error(RetriableError, 403),
            "API rate limited (the legacy gateway's 403 Developer Over Qps)",
            "ATHENA_RATE_LIMIT_RPS",
        ),
        (
            _error(AuthError, 403),
            "403 without an API error: a gateway refused (throttling or a firewall)",
            "proxies",
        ),
        (_error(RetriableError, 502), "server error or gateway page (502)", "support report"),
        (_error(RetriableError, 200), "server error or gateway page (200)", "retry later"),
        (
            _error(FatalError, 400, "Practice is not configured correctly."),
            "request rejected (400: Practice is not configured correctly.)",
            "support report",
        ),
        (_error(RetriableError, None), "no answer (x)", "ATHENA_BASE_URL"),
    ],
)
def test_api_failures_read_plainly(error: AthenaError, verdict: str, step: str) -> None:
    result = api_failure(error, endpoint="/departments", practice_id="7")
    assert (result.status, result.text) == ("fail", verdict)
    assert result.next_step is not None and step in result.next_step


@pytest.mark.parametrize(
    ("error", "verdict", "step"),
    [
        (
            _error(AuthError, 401, "invalid_client"),
            "the token endpoint refused the client id or secret (invalid_client)",
            "ATHENA_CLIENT_ID and ATHENA_CLIENT_SECRET",
        ),
        (
            _error(AuthError, 400, "invalid_scope", "The requested scope is invalid"),
            "the key may not use scope ATHENA_SCOPE (invalid_scope)",
            "unset ATHENA_SCOPE",
        ),
        (
            _error(RetriableError, 429, "rate_limit_exceeded", retry_after=42),
            "token endpoint rate limited (Retry-After 42 s): at most 5 new tokens a minute in "
            "preview, 50 in production",
            "wait a minute",
        ),
        (_error(RetriableError, 503), "token endpoint error 503", "try again later"),
        (_error(AuthError, 404), "no token endpoint at ATHENA_TOKEN_URL", "ATHENA_TOKEN_URL"),
        (_error(RetriableError, None), "token endpoint unreachable (x)", "network"),
    ],
)
def test_token_failures_read_plainly(error: AthenaError, verdict: str, step: str) -> None:
    result = token_failure(error)
    assert (result.status, result.text) == ("fail", verdict)
    assert result.next_step is not None and step in result.next_step


def test_an_empty_listing_is_a_warning_only_where_the_sync_needs_rows() -> None:
    assert listed("/departments", 0).status == "warn"
    assert listed("/departments", 3).text == "3 departments"
    zero = listed("/appointments/booked", 0, scope="in department 1")
    assert (zero.status, zero.text) == ("ok", "0 appointments in department 1")
