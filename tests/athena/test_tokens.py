"""Token values and the two token caches (in-process, and Redis over the real server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from worker.athena.tokens import MemoryTokenCache, RedisTokenCache, Token, TokenCache, cache_key


def test_token_refreshes_margin_seconds_early() -> None:
    token = Token.minted("t", 3600, now=1000.0, margin=300)
    assert (token.refresh_at, token.expires_at) == (4300.0, 4600.0)
    assert token.fresh(4299) and not token.fresh(4300) and token.usable(4599)


@pytest.mark.parametrize(
    ("lifetime", "margin", "refresh_after"),
    [
        (3600, 300, 3300),  # the documented hour: the margin decides
        (1500, 300, 1200),  # where the margin and a fifth of the life meet
        (600, 300, 480),  # short lifetimes: a fifth of the life early, never more
        (30, 300, 24),
        (1, 300, 0.8),
        (3600, 0, 3600),  # no margin: used to the end
    ],
)
def test_a_token_is_refreshed_ahead_by_the_margin_or_a_fifth_of_its_life(
    lifetime: float, margin: float, refresh_after: float
) -> None:
    token = Token.minted("t", lifetime, now=100.0, margin=margin)
    assert token.refresh_at - 100.0 == pytest.approx(refresh_after)
    assert token.expires_at == 100.0 + lifetime


def test_token_repr_hides_the_secret_value() -> None:
    assert "s3cr3t" not in repr(Token("s3cr3t", 1.0, 1.0))


def test_cache_key_hashes_url_client_and_scope_never_the_secret() -> None:
    key = cache_key("p", "https://h/oauth2/v1/token", "client", "scope")
    assert key.startswith("p:token:") and "client" not in key and "scope" not in key
    assert key != cache_key("p", "https://h/oauth2/v1/token", "client", "other-scope")
    assert key != cache_key("p", "https://other/oauth2/v1/token", "client", "scope")


@pytest.fixture(params=["memory", "redis"])
def cache(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> Iterator[TokenCache]:
    if request.param == "memory":
        yield MemoryTokenCache()
        return
    client = redis.Redis.from_url(redis_url)
    yield RedisTokenCache(client, f"{redis_prefix}:token:abc")
    client.close()


def test_store_load_round_trip(cache: TokenCache) -> None:
    assert cache.load() is None
    token = Token("tok-1", time.time() + 60, time.time() + 30)
    cache.store(token)
    assert cache.load() == token


def test_discard_only_deletes_the_token_it_names(cache: TokenCache) -> None:
    newer = Token("tok-2", time.time() + 60, time.time() + 30)
    cache.store(newer)
    assert cache.discard("tok-1") is False  # a stale 401 must not wipe a newer token
    assert cache.load() == newer
    assert cache.discard("tok-2") is True
    assert cache.load() is None


def test_lock_is_exclusive_until_released(cache: TokenCache) -> None:
    handle = cache.try_lock(5)
    assert handle is not None
    assert cache.try_lock(5) is None
    assert cache.extend_lock(handle, 5)
    cache.unlock(handle)
    again = cache.try_lock(5)
    assert again is not None
    cache.unlock(again)


def test_memory_lock_is_exclusive_across_threads() -> None:
    cache = MemoryTokenCache()
    handles: list[str | None] = []
    barrier = threading.Barrier(10)

    def grab() -> None:
        barrier.wait()
        handles.append(cache.try_lock(5))

    threads = [threading.Thread(target=grab) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([h for h in handles if h]) == 1


def test_shared_memory_cache_is_one_per_key() -> None:
    assert MemoryTokenCache.shared("k1") is MemoryTokenCache.shared("k1")
    assert MemoryTokenCache.shared("k1") is not MemoryTokenCache.shared("k2")


def test_redis_entry_expires_with_the_token(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisTokenCache(client, f"{redis_prefix}:token:ttl")
    cache.store(Token("tok", time.time() + 100, time.time() + 50))
    assert 95_000 < client.pttl(cache.key) <= 100_000
    client.close()


def test_redis_lock_expires_and_only_the_holder_releases_it(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisTokenCache(client, f"{redis_prefix}:token:lock")
    first = cache.try_lock(0.05)
    assert first is not None
    time.sleep(0.1)
    second = cache.try_lock(5)  # the first holder died: its lock expired
    assert second is not None
    cache.unlock(first)  # a late release by the old holder must not free the new holder's lock
    assert cache.try_lock(5) is None
    assert cache.extend_lock(first, 5) is False
    cache.unlock(second)
    assert client.exists(cache.lock_key) == 0
    client.close()


def test_redis_malformed_entry_reads_as_missing(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisTokenCache(client, f"{redis_prefix}:token:bad")
    client.hset(cache.key, mapping={"access_token": "x", "expires_at": "soon"})
    assert cache.load() is None
    client.close()
