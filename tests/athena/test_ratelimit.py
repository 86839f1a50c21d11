"""The request budget: token buckets in-process and in Redis (real server, server clock)."""

from __future__ import annotations

import redis

from worker.athena.ratelimit import LocalRateLimiter, RedisRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_local_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(rate=10, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire("195900")
    assert clock.now == 100.0  # the burst is free
    for _ in range(10):
        limiter.acquire("195900")
    assert abs(clock.now - 101.0) < 1e-6  # then 10 more take one second at 10 rps


def test_local_buckets_are_per_key() -> None:
    clock = FakeClock()
    limiter = LocalRateLimiter(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    assert limiter.try_acquire("a") == 0
    assert limiter.try_acquire("b") == 0
    assert abs(limiter.try_acquire("a") - 1.0) < 1e-6


def test_redis_bucket_burst_then_wait(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, prefix=redis_prefix, rate=2, burst=3)
    assert [limiter.try_acquire("195900") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.try_acquire("195900")
    assert 0.3 < wait <= 0.5  # one token takes 0.5 s at 2 rps
    assert limiter.try_acquire("other") == 0.0  # per practice
    assert client.pttl(limiter.key_for("195900")) > 0  # idle buckets expire
    client.close()


def test_redis_acquire_sleeps_the_advised_wait(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    slept: list[float] = []
    limiter = RedisRateLimiter(client, prefix=redis_prefix, rate=1000, burst=1, sleep=slept.append)
    limiter.acquire("p")
    limiter.acquire("p")  # the bucket is empty: sleep ~1 ms, then take the refilled token
    assert slept and all(0 < s <= 0.002 for s in slept)
    client.close()
