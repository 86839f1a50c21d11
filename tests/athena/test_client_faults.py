"""Transient faults from the sandbox: retried with backoff, then raised as retriable, clearly."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from sandbox import FaultConfig, SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from tests.athena.conftest import Reply, ScriptedServer, Seen, client_settings, no_sleep
from worker.athena import (
    AthenaClient,
    AuthError,
    MemoryTokenCache,
    RetriableError,
    RetriesExhausted,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with serve_sandbox(SandboxConfig(seed=9, appointments=50)) as server:
        yield server


@pytest.fixture(scope="module")
def tokens() -> MemoryTokenCache:
    return MemoryTokenCache()


@pytest.fixture
def slept() -> list[float]:
    return []


@pytest.fixture
def client(
    sandbox: SandboxServer, tokens: MemoryTokenCache, slept: list[float]
) -> Iterator[AthenaClient]:
    sandbox.set_faults(FaultConfig())
    sandbox.reset_stats()
    settings = client_settings(
        sandbox.url, max_attempts=3, backoff_base_seconds=1.0, backoff_max_seconds=4.0
    )
    made = AthenaClient(settings, token_cache=tokens, sleep=slept.append, rng=random.Random(1))
    made.get("195900", "/ping")  # token in hand before faults start
    made.stats.requests = 0
    yield made
    sandbox.set_faults(FaultConfig())
    made.close()


def test_429_with_retry_after_waits_what_the_server_says(
    client: AthenaClient, sandbox: SandboxServer, slept: list[float]
) -> None:
    sandbox.set_faults(rate_429=1.0, retry_after_share=1.0, retry_after_seconds=2)
    with capture_logs() as logs, pytest.raises(RetriesExhausted) as caught:
        client.get("195900", "/departments")
    assert str(caught.value).startswith(
        "gave up after 3 attempts (last status 429): throttled: 429"
    )
    assert isinstance(caught.value, RetriableError) and caught.value.retry_after == 2.0
    assert slept == [2.0, 2.0]
    assert client.stats.snapshot() | {"token_mints": 0} == {
        "requests": 3,
        "retries": 2,
        "throttled": 3,
        "token_mints": 0,
    }
    retried = [e for e in logs if e["event"] == "athena.request_retried"]
    assert [(e["attempt"], e["status"], e["wait_seconds"]) for e in retried] == [
        (1, 429, 2.0),
        (2, 429, 2.0),
    ]
    assert retried[0]["log_level"] == "warning"
    assert retried[0]["path"] == "/departments" and retried[0]["practice_id"] == "195900"
    assert len(retried[0]["request_id"]) == 36
    assert sandbox.stats()["requests"]["/v1/{practiceid}/departments"] == {"429": 3}


def test_429_without_retry_after_backs_off_with_jitter(
    client: AthenaClient, sandbox: SandboxServer, slept: list[float]
) -> None:
    sandbox.set_faults(rate_429=1.0, retry_after_share=0.0)
    with pytest.raises(RetriesExhausted, match="gave up after 3 attempts") as caught:
        client.get("195900", "/departments")
    assert caught.value.retry_after is None
    assert len(slept) == 2 and 0 <= slept[0] <= 1.0 and 0 <= slept[1] <= 2.0
    assert slept != [1.0, 2.0]  # jittered, not fixed


def test_502_with_an_html_body_is_retried_then_raised_clearly(
    client: AthenaClient, sandbox: SandboxServer
) -> None:
    sandbox.set_faults(error_rate=1.0, html_502_share=1.0)
    with pytest.raises(RetriesExhausted) as caught:
        client.get("195900", "/departments")
    message = str(caught.value)
    assert "gave up after 3 attempts (last status 502)" in message
    assert "502 Bad Gateway with a non-JSON (text/html) body" in message
    assert "<html>" not in message


def test_transient_faults_are_ridden_out(client: AthenaClient, sandbox: SandboxServer) -> None:
    sandbox.set_faults(error_rate=0.3, rate_429=0.2, seed=4)
    pages = list(
        client.paginate(
            "195900",
            "/appointmenttypes",
            {"hidenonpatient": False},
            collection="appointmenttypes",
            limit=3,
        )
    )
    assert sum(len(p.records) for p in pages) == len(sandbox.truth("195900")["appointmenttypes"])
    assert client.stats.retries > 0
    assert client.stats.requests == len(pages) + client.stats.retries


def test_read_timeouts_are_retried_then_raised_clearly(
    sandbox: SandboxServer, tokens: MemoryTokenCache
) -> None:
    settings = client_settings(sandbox.url, read_timeout_seconds=0.2, max_attempts=2)
    client = AthenaClient(settings, token_cache=tokens, sleep=no_sleep)
    client.get("195900", "/ping")
    sandbox.set_faults(latency_ms=600)
    try:
        with pytest.raises(RetriesExhausted) as caught:
            client.get("195900", "/ping")
    finally:
        sandbox.set_faults(FaultConfig())
    assert str(caught.value).startswith(
        "gave up after 2 attempts (no response): read timed out after 0.2s"
    )
    assert caught.value.status is None and caught.value.path == "/ping"
    assert client.stats.retries == 1


def test_connection_refused_is_retriable() -> None:
    settings = client_settings("http://127.0.0.1:9", max_attempts=2)
    client = AthenaClient(settings, sleep=no_sleep)
    with pytest.raises(RetriesExhausted, match="connection failed"):
        client.get("195900", "/ping")


def test_every_request_has_its_own_request_id_and_rate_headers_are_logged(
    scripted: ScriptedServer, debug_logs: None
) -> None:
    def ping(_: Seen) -> Reply:
        headers = {"X-RateLimit-Remaining": "99", "X-Quota-Daily": "1000", "X-Other": "no"}
        return Reply(body={"Pong": "true"}, headers=headers)

    scripted.api("/ping", ping)
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    with capture_logs() as logs:
        client.get("195900", "/ping")
        client.get("195900", "/ping", {"flag": True})
    calls = scripted.calls("/v1/195900/ping")
    request_ids = [c.headers["x-request-id"] for c in calls]
    assert len(set(request_ids)) == 2 and all(len(r) == 36 for r in request_ids)
    assert calls[1].query == {"flag": "true"}
    responses = [e for e in logs if e["event"] == "athena.response"]
    event = dict(responses[0])
    assert isinstance(event.pop("elapsed_ms"), float)
    assert event == {
        "event": "athena.response",
        "log_level": "debug",
        "method": "GET",
        "path": "/ping",
        "practice_id": "195900",
        "status": 200,
        "request_id": request_ids[0],
        "x_ratelimit_remaining": "99",
        "x_quota_daily": "1000",
    }


def test_a_legacy_over_qps_403_is_retried_like_a_429(
    client: AthenaClient, sandbox: SandboxServer
) -> None:
    sandbox.set_faults(legacy_throttle_rate=1.0)
    with pytest.raises(RetriesExhausted, match=r"last status 403\): throttled: 403"):
        client.get("195900", "/departments")
    assert sandbox.stats()["requests"]["/v1/{practiceid}/departments"] == {"403": 3}
    sandbox.set_faults(legacy_throttle_rate=0.4, seed=2)
    pages = list(client.paginate("195900", "/providers", collection="providers", limit=2))
    assert sum(len(p.records) for p in pages) == len(sandbox.truth("195900")["providers"])
    assert client.stats.retries > 2


def test_a_forbidden_endpoint_is_an_auth_error_at_once() -> None:
    config = SandboxConfig(seed=9, appointments=10, forbidden_endpoints=("195900:/providers",))
    with serve_sandbox(config) as server:
        client = AthenaClient(client_settings(server.url), sleep=no_sleep)
        with pytest.raises(AuthError) as caught:
            client.get("195900", "/providers")
        assert client.get("195900", "/departments")["departments"]
        stats = server.stats()
    assert (caught.value.status, caught.value.path, caught.value.api_error) == (
        403,
        "/providers",
        "Forbidden.",
    )
    assert stats["requests"]["/v1/{practiceid}/providers"] == {"403": 1}
