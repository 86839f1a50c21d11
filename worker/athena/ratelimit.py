"""The request budget: a token bucket per key (practice), in Redis for all workers or in-process.

``acquire(key)`` blocks until a slot is free. The bucket refills at ``rate`` tokens per second up to
``burst``; a caller that finds it empty is told how long until the next token, sleeps that, and asks
again. In Redis the whole check-and-take is one Lua script using the server's TIME, so processes on
different hosts agree on the clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from worker import metrics

_TOKEN_BUCKET = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 - 1e-9 then
  tokens = math.max(0, tokens - 1)
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


EPSILON = 1e-9


class RateLimiter(Protocol):
    """Blocks until a request slot for ``key`` is free."""

    def acquire(self, key: str) -> None:
        """Wait for and take one slot."""


class RedisRateLimiter:
    """A token bucket per key in Redis, shared by every process using the same prefix."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        rate: float,
        burst: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self._prefix = prefix
        self._rate = rate
        self._burst = burst
        self._sleep = sleep
        self._script = client.register_script(_TOKEN_BUCKET)

    def key_for(self, key: str) -> str:
        """The Redis key of one bucket."""
        return f"{self._prefix}:ratelimit:{key}"

    def try_acquire(self, key: str) -> float:
        """Take a slot if free (0.0), else the seconds until one will be."""
        wait = self._script(keys=[self.key_for(key)], args=[repr(self._rate), self._burst])
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    def acquire(self, key: str) -> None:
        """Wait for and take one slot."""
        while (wait := self.try_acquire(key)) > 0:
            metrics.rate_limit_wait(key, wait)
            self._sleep(wait)


class LocalRateLimiter:
    """The same token bucket, per key, for the threads of one process."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate} and {burst}")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._guard = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def try_acquire(self, key: str) -> float:
        """Take a slot if free (0.0), else the seconds until one will be."""
        with self._guard:
            now = self._clock()
            tokens, stamp = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + max(0.0, now - stamp) * self._rate)
            wait = 0.0
            if tokens >= 1 - EPSILON:  # float drift must not leave a sleeper 1e-17 short
                tokens = max(0.0, tokens - 1)
            else:
                wait = (1 - tokens) / self._rate
            self._buckets[key] = (tokens, now)
            return wait

    def acquire(self, key: str) -> None:
        """Wait for and take one slot."""
        while (wait := self.try_acquire(key)) > 0:
            metrics.rate_limit_wait(key, wait)
            self._sleep(wait)
