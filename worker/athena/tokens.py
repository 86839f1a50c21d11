"""Where the access token lives between requests: a Protocol with Redis and in-process caches.

One entry per (token URL, client id, scope); the key is a hash of those and never involves the
secret. The cache also owns the single-flight mint lock (see :mod:`worker.athena.broker`).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import redis

# A token is refreshed ahead of expiry by the margin, but never by more than this share of its
# lifetime: a shared token is then minted at most 1.25 times per lifetime whatever the lifetime
# (30-second tokens: 2.5 mints a minute, under preview's 5), and the last fifth still leaves the
# minter time (6 s of a 30-second token) while the other workers keep using the old token.
EARLY_SHARE = 0.2


@dataclass(frozen=True)
class Token:
    """An access token and the wall-clock times (epoch seconds) it goes stale and expires."""

    access_token: str = field(repr=False)
    expires_at: float
    refresh_at: float

    @classmethod
    def minted(cls, access_token: str, expires_in: float, *, now: float, margin: float) -> Token:
        """A token just minted; refresh ``min(margin, 20% of its life)`` seconds early."""
        early = min(max(0.0, margin), expires_in * EARLY_SHARE)
        return cls(access_token, expires_at=now + expires_in, refresh_at=now + expires_in - early)

    def fresh(self, now: float) -> bool:
        """Not yet due for a refresh."""
        return now < self.refresh_at

    def usable(self, now: float) -> bool:
        """Not yet expired (may be stale)."""
        return now < self.expires_at


def cache_key(prefix: str, token_url: str, client_id: str, scope: str) -> str:
    """The cache key for one credential: prefix + hash of (token URL, client id, scope)."""
    digest = hashlib.sha256("\n".join((token_url, client_id, scope)).encode()).hexdigest()
    return f"{prefix}:token:{digest[:32]}"


class TokenCache(Protocol):
    """A shared slot for one token plus the lock that lets exactly one worker mint."""

    def load(self) -> Token | None:
        """The cached token, or None."""

    def store(self, token: Token) -> None:
        """Replace the cached token."""

    def discard(self, access_token: str) -> bool:
        """Delete the cached token only if it is still this one; True if deleted."""

    def try_lock(self, ttl_seconds: float) -> str | None:
        """Take the mint lock without waiting; a handle, or None if someone else holds it."""

    def extend_lock(self, handle: str, ttl_seconds: float) -> bool:
        """Keep holding the lock for ``ttl_seconds`` more; False if it was lost."""

    def unlock(self, handle: str) -> None:
        """Release the lock if this handle still holds it."""

    def remember_refusal(self, message: str, ttl_seconds: float) -> None:
        """Note that the token endpoint refused the credentials (so others do not re-ask)."""

    def refusal(self) -> str | None:
        """The remembered refusal message, if one is still in force."""


class MemoryTokenCache:
    """In-process cache: a dict slot and a threading.Lock; shared per key within a process."""

    _shared: ClassVar[dict[str, MemoryTokenCache]] = {}
    _shared_guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._token: Token | None = None
        self._guard = threading.Lock()
        self._mint = threading.Lock()
        self._refused: tuple[str, float] | None = None

    @classmethod
    def shared(cls, key: str) -> MemoryTokenCache:
        """The process-wide cache for ``key`` (so clients in one process share a token)."""
        with cls._shared_guard:
            return cls._shared.setdefault(key, cls())

    def load(self) -> Token | None:
        """The cached token, or None."""
        with self._guard:
            return self._token

    def store(self, token: Token) -> None:
        """Replace the cached token."""
        with self._guard:
            self._token = token

    def discard(self, access_token: str) -> bool:
        """Compare-and-delete."""
        with self._guard:
            if self._token is not None and self._token.access_token == access_token:
                self._token = None
                return True
            return False

    def try_lock(self, ttl_seconds: float) -> str | None:
        """A thread lock needs no expiry: a holder always releases in ``finally``."""
        return "local" if self._mint.acquire(blocking=False) else None

    def extend_lock(self, handle: str, ttl_seconds: float) -> bool:
        """Nothing to extend in-process."""
        return True

    def unlock(self, handle: str) -> None:
        """Release the thread lock."""
        self._mint.release()

    def remember_refusal(self, message: str, ttl_seconds: float) -> None:
        """Keep the refusal for ``ttl_seconds``."""
        with self._guard:
            self._refused = (message, time.monotonic() + ttl_seconds)

    def refusal(self) -> str | None:
        """The refusal message while it is in force."""
        with self._guard:
            if self._refused is None or time.monotonic() >= self._refused[1]:
                return None
            return self._refused[0]


_DISCARD = """
if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisTokenCache:
    """Redis hash ``key`` {access_token, expires_at, refresh_at} expiring with the token;
    lock ``key:lock`` taken with SET NX PX and released/extended only by its holder (Lua)."""

    def __init__(self, client: redis.Redis, key: str, *, clock: Any = time.time) -> None:
        self._redis = client
        self.key = key
        self.lock_key = key + ":lock"
        self.refusal_key = key + ":refused"
        self._clock = clock
        self._discard = client.register_script(_DISCARD)
        self._unlock = client.register_script(_UNLOCK)
        self._extend = client.register_script(_EXTEND)

    def load(self) -> Token | None:
        """The cached token, or None (also when the entry is malformed)."""
        raw = {_text(k): _text(v) for k, v in self._redis.hgetall(self.key).items()}
        try:
            return Token(raw["access_token"], float(raw["expires_at"]), float(raw["refresh_at"]))
        except (KeyError, ValueError):
            return None

    def store(self, token: Token) -> None:
        """Write the token and let Redis drop it when it expires."""
        ttl_ms = max(1, int((token.expires_at - self._clock()) * 1000))
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.key)
            pipe.hset(
                self.key,
                mapping={
                    "access_token": token.access_token,
                    "expires_at": repr(token.expires_at),
                    "refresh_at": repr(token.refresh_at),
                },
            )
            pipe.pexpire(self.key, ttl_ms)
            pipe.execute()

    def discard(self, access_token: str) -> bool:
        """Compare-and-delete, atomically."""
        return bool(self._discard(keys=[self.key], args=[access_token]))

    def try_lock(self, ttl_seconds: float) -> str | None:
        """SET NX PX with a random handle."""
        handle = uuid.uuid4().hex
        taken = self._redis.set(self.lock_key, handle, nx=True, px=max(1, int(ttl_seconds * 1000)))
        return handle if taken else None

    def extend_lock(self, handle: str, ttl_seconds: float) -> bool:
        """PEXPIRE the lock if we still hold it."""
        ttl_ms = max(1, int(ttl_seconds * 1000))
        return bool(self._extend(keys=[self.lock_key], args=[handle, ttl_ms]))

    def unlock(self, handle: str) -> None:
        """DEL the lock if we still hold it."""
        self._unlock(keys=[self.lock_key], args=[handle])

    def remember_refusal(self, message: str, ttl_seconds: float) -> None:
        """SET the refusal with an expiry, shared by every worker."""
        self._redis.set(self.refusal_key, message, px=max(1, int(ttl_seconds * 1000)))

    def refusal(self) -> str | None:
        """The refusal message while it is in force."""
        value = self._redis.get(self.refusal_key)
        return None if value is None else _text(value)
