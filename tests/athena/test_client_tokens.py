"""The token broker against the sandbox: expiry mid-run, single-flight across threads and
processes through real Redis, and the token endpoint's own failures."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest
import redis

from sandbox import FaultConfig, SandboxConfig
from sandbox.testing import serve_sandbox
from tests.athena import workers
from tests.athena.conftest import CLIENT_ID, Reply, ScriptedServer, client_settings, no_sleep
from worker.athena import (
    AthenaClient,
    AuthError,
    FatalError,
    MemoryTokenCache,
    RedisTokenCache,
    Token,
    build_client,
)
from worker.athena.tokens import cache_key

WORKERS = 20


def test_a_token_expiring_mid_run_is_replaced_once_and_the_run_completes() -> None:
    with serve_sandbox(SandboxConfig(seed=5, appointment_types=20)) as server:
        client = AthenaClient(client_settings(server.url), sleep=no_sleep)
        params = {"hidenonpatient": False}
        pages = client.paginate(
            "195900", "/appointmenttypes", params, collection="appointmenttypes", limit=5
        )
        first = next(pages)
        assert server.expire_tokens() == 1
        rest = list(pages)
        stats = server.stats()
    assert len(first.records) + sum(len(p.records) for p in rest) == 20
    assert rest[-1].last
    assert stats["token_mints"] == 2 and client.stats.token_mints == 2
    assert stats["requests"]["/v1/{practiceid}/appointmenttypes"] == {"200": 4, "401": 1}
    assert client.stats.requests == 5 and client.stats.retries == 0


def test_twenty_threads_with_an_empty_redis_cache_mint_once(
    redis_url: str, redis_prefix: str
) -> None:
    with serve_sandbox() as server:
        settings = client_settings(server.url, redis_url=redis_url, redis_key_prefix=redis_prefix)
        barrier = threading.Barrier(WORKERS)
        errors: list[BaseException] = []

        def work() -> None:
            client = build_client(settings)
            barrier.wait()
            try:
                client.get("195900", "/departments", {"limit": 1})
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(WORKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        stats = server.stats()
    assert errors == []
    assert stats["token_mints"] == 1
    assert stats["requests"]["/v1/{practiceid}/departments"] == {"200": WORKERS}


def test_short_lived_tokens_shared_through_redis_are_minted_about_once_per_lifetime(
    redis_url: str, redis_prefix: str
) -> None:
    ttl, clients_count = 30, 4
    # The clients' clock is fake (three 30-second lifetimes pass in a second or two) and the
    # sandbox's is advanced in step: its tokens expire and its per-minute mint limit (5, as
    # preview) counts on the same time line, so a client using an expired token meets a 401.
    now = [time.time()]

    def clock() -> float:
        return now[0]

    config = SandboxConfig(seed=5, faults=FaultConfig(token_ttl_seconds=ttl))
    with serve_sandbox(config) as server:
        settings = client_settings(server.url, redis_key_prefix=redis_prefix)
        key = cache_key(redis_prefix, settings.athena_token_url, CLIENT_ID, settings.athena_scope)
        connection = redis.Redis.from_url(redis_url)
        clients = [
            AthenaClient(
                settings,
                token_cache=RedisTokenCache(connection, key, clock=clock),
                sleep=no_sleep,
                clock=clock,
            )
            for _ in range(clients_count)
        ]
        span = 3 * ttl
        for _ in range(span):  # each client sends one request a second, in turn
            for client in clients:
                client.get("195900", "/ping")
            now[0] += 1
            server.advance_clock(1)
        stats = server.stats()
        connection.close()
    mints = stats["token_mints"]
    assert stats["requests"]["/oauth2/v1/token"] == {"200": mints}, "never a 429"
    # Every request answered 200: never one sent with a token the server had expired.
    assert stats["requests"]["/v1/{practiceid}/ping"] == {"200": span * clients_count}
    assert span / ttl <= mints <= span / (0.8 * ttl) + 1  # about once per lifetime


def test_twenty_threads_sharing_an_in_process_cache_mint_once() -> None:
    with serve_sandbox() as server:
        cache = MemoryTokenCache()
        clients = [
            AthenaClient(client_settings(server.url), token_cache=cache) for _ in range(WORKERS)
        ]
        barrier = threading.Barrier(WORKERS)

        def work(client: AthenaClient) -> None:
            barrier.wait()
            client.get("195900", "/ping")

        threads = [threading.Thread(target=work, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        stats = server.stats()
    assert stats["token_mints"] == 1
    assert stats["requests"]["/v1/{practiceid}/ping"] == {"200": WORKERS}
    assert sum(c.stats.token_mints for c in clients) == 1


@pytest.mark.slow
def test_twenty_processes_with_an_empty_redis_cache_mint_once(
    redis_url: str, redis_prefix: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    with serve_sandbox() as server:
        settings = client_settings(server.url, redis_url=redis_url, redis_key_prefix=redis_prefix)
        barrier: Any = ctx.Barrier(WORKERS)
        results: Any = ctx.Queue()
        procs = [
            ctx.Process(target=workers.one_request, args=(settings, barrier, results))
            for _ in range(WORKERS)
        ]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
        stats = server.stats()
    assert [proc.exitcode for proc in procs] == [0] * WORKERS
    assert stats["token_mints"] == 1
    assert sum(mints for _, mints in outcomes) == 1
    assert stats["requests"]["/v1/{practiceid}/departments"] == {"200": WORKERS}
    key_count = len(list(redis.Redis.from_url(redis_url).scan_iter(f"{redis_prefix}:token:*")))
    assert key_count == 1  # the token entry; the mint lock was released


def test_a_forbidden_practice_is_an_auth_error_without_burning_a_mint() -> None:
    with serve_sandbox() as server:
        client = AthenaClient(client_settings(server.url), sleep=no_sleep)
        with pytest.raises(AuthError) as caught:
            client.get("1128700", "/departments")
        assert server.stats()["token_mints"] == 1
    assert caught.value.status == 401 and caught.value.practice_id == "1128700"
    assert caught.value.api_error == "Incorrect permissions."


def test_an_unknown_practice_is_fatal() -> None:
    with serve_sandbox() as server:
        client = AthenaClient(client_settings(server.url), sleep=no_sleep)
        with pytest.raises(FatalError, match="404") as caught:
            client.get("424242", "/departments")
    assert not isinstance(caught.value, AuthError)
    assert caught.value.api_error == "Invalid practice."


def test_wrong_credentials_fail_at_once_without_retrying_the_token_endpoint() -> None:
    with serve_sandbox() as server:
        settings = client_settings(server.url, athena_client_secret="wrong-secret")
        client = AthenaClient(settings, sleep=no_sleep)
        with pytest.raises(
            AuthError, match="token endpoint refused the credentials: 401"
        ) as caught:
            client.get("195900", "/ping")
        stats = server.stats()
    assert stats["requests"]["/oauth2/v1/token"] == {"401": 1}
    assert caught.value.api_error == "invalid_client"
    assert "wrong-secret" not in str(caught.value)


def test_a_refusal_is_shared_so_many_workers_ask_the_token_endpoint_once(
    redis_url: str, redis_prefix: str
) -> None:
    with serve_sandbox() as server:
        settings = client_settings(
            server.url, athena_client_secret="wrong-secret", redis_key_prefix=redis_prefix
        )
        shared = redis.Redis.from_url(redis_url)
        errors: list[BaseException] = []

        def work() -> None:
            client = build_client(settings, redis=shared, sleep=no_sleep)
            try:
                client.get("195900", "/ping")
            except AuthError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        stats = server.stats()
    assert len(errors) == 10, "every worker sees the refusal"
    assert stats["requests"]["/oauth2/v1/token"] == {"401": 1}, "only one asked"
    assert all("wrong-secret" not in str(e) for e in errors)


def test_token_endpoint_throttling_and_5xx_are_retried_honouring_retry_after(
    scripted: ScriptedServer,
) -> None:
    answers = [
        Reply(429, {"error": "rate_limit_exceeded"}, headers={"Retry-After": "7"}),
        Reply(503, b"", content_type="text/plain"),
        Reply(body={"access_token": "t-1", "expires_in": 3600}),
    ]
    scripted.route("POST", "/oauth2/v1/token", lambda _: answers.pop(0))
    scripted.api("/ping", lambda _: Reply(body={"Pong": "true"}))
    slept: list[float] = []
    client = AthenaClient(client_settings(scripted.url), sleep=slept.append)
    assert client.get("195900", "/ping") == {"Pong": "true"}
    assert slept[0] == 7.0 and len(slept) == 2
    assert client.stats.token_mints == 1 and client.stats.throttled == 1
    token_call = scripted.calls("/oauth2/v1/token")[0]
    assert token_call.headers["authorization"].startswith("Basic ")
    assert "grant_type=client_credentials" in token_call.body


def test_a_second_401_after_a_fresh_token_is_a_configuration_error(
    scripted: ScriptedServer,
) -> None:
    scripted.api("/ping", lambda _: Reply(401, {"error": "Developer Inactive"}))
    client = AthenaClient(client_settings(scripted.url), sleep=no_sleep)
    with pytest.raises(AuthError, match="401 again with a newly minted token"):
        client.get("195900", "/ping")
    assert len(scripted.calls("/v1/195900/ping")) == 2
    assert client.stats.token_mints == 2 and client.stats.retries == 0


def test_a_stale_token_is_still_used_while_another_worker_refreshes(
    scripted: ScriptedServer,
) -> None:
    scripted.api("/ping", lambda _: Reply(body={"Pong": "true"}))
    cache = MemoryTokenCache()
    now = time.time()
    cache.store(Token("old-token", expires_at=now + 100, refresh_at=now - 1))
    client = AthenaClient(client_settings(scripted.url), token_cache=cache, sleep=no_sleep)
    handle = cache.try_lock(30)  # another worker is minting
    assert handle is not None
    client.get("195900", "/ping")
    cache.unlock(handle)
    client.get("195900", "/ping")  # now this worker refreshes
    seen = [c.headers["authorization"] for c in scripted.calls("/v1/195900/ping")]
    assert seen == ["Bearer old-token", "Bearer scripted-token-1"]
    assert client.stats.token_mints == 1


def test_a_lock_left_by_a_dead_worker_expires_and_a_waiter_mints(
    scripted: ScriptedServer, redis_url: str, redis_prefix: str
) -> None:
    scripted.api("/ping", lambda _: Reply(body={"Pong": "true"}))
    settings = client_settings(scripted.url, redis_url=redis_url, redis_key_prefix=redis_prefix)
    client = build_client(settings, sleep=no_sleep)
    key = cache_key(redis_prefix, settings.athena_token_url, CLIENT_ID, settings.athena_scope)
    cache = RedisTokenCache(redis.Redis.from_url(redis_url), key)
    assert cache.try_lock(0.3) is not None  # taken, then its holder "dies"
    started = time.monotonic()
    client.get("195900", "/ping")
    assert time.monotonic() - started >= 0.25
    assert len(scripted.calls("/oauth2/v1/token")) == 1
    assert cache.load() is not None
