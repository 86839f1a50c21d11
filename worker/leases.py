"""Leases: at most one holder per unit of work across every worker, beat and manual trigger.

A lease is one Redis key ``{prefix}:lease:{name}`` holding ``"{token}:{owner}"`` with an expiry.

- **acquire** (Lua): if the key is free, INCR the fencing counter ``{prefix}:lease-fence`` and
  SET the key with the new token and a PX expiry; one round trip, so two triggers never both win.
- **renew** (Lua, compare-and-extend): PEXPIRE only if the key still holds our value. A daemon
  thread renews every ``ttl / 3`` while the work runs (:meth:`Leases.hold`).
- **release** (Lua, compare-and-delete): DEL only if the key still holds our value, so a holder
  whose lease expired never frees somebody else's.
- **fencing**: the token grows with every grant. A holder checks it still owns the lease
  (:meth:`HeldLease.check`) before committing each page, and every write transaction records its
  token in ``unit_fences`` (``worker.store.fences.claim_fence``), refusing to commit when a
  higher token already wrote: a stale holder (paused past its expiry, then overtaken) cannot
  overwrite its successor even if it passed the Redis check just before the takeover.

A SIGKILLed holder stops renewing, so its lease blocks the unit for at most ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger()

_ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then return false end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaseLost(RuntimeError):
    """This process no longer holds the lease it worked under (it expired and was taken)."""

    def __init__(self, name: str, token: int) -> None:
        super().__init__(f"lease on {name} (token {token}) was lost")
        self.name = name
        self.token = token


@dataclass(frozen=True)
class Lease:
    """A granted lease: the unit's name, the fencing token and the owner written with it."""

    name: str
    key: str
    token: int
    owner: str
    ttl_ms: int

    @property
    def value(self) -> str:
        """What the lease key holds while this lease is current."""
        return f"{self.token}:{self.owner}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease now (for the reason of a skipped run)."""

    token: int
    owner: str
    ttl_ms: int


class Leases:
    """Leases under one key prefix, with one expiry (``ttl`` seconds)."""

    def __init__(self, redis: Any, *, prefix: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        self.redis = redis
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def key(self, name: str) -> str:
        """The Redis key of the lease on ``name``."""
        return f"{self.prefix}:lease:{name}"

    @property
    def fence_key(self) -> str:
        """The counter every fencing token comes from (one per prefix: monotonic across units)."""
        return f"{self.prefix}:lease-fence"

    def acquire(self, name: str, *, owner: str | None = None) -> Lease | None:
        """The lease on ``name``, or None when somebody holds it."""
        owner = owner or uuid.uuid4().hex
        key = self.key(name)
        token = self._acquire(keys=[key, self.fence_key], args=[owner, self.ttl_ms])
        if token is None:
            return None
        return Lease(name, key, int(token), owner, self.ttl_ms)

    def renew(self, lease: Lease) -> bool:
        """Extend the lease by its ttl; False when it is no longer ours."""
        return bool(self._renew(keys=[lease.key], args=[lease.value, lease.ttl_ms]))

    def release(self, lease: Lease) -> bool:
        """Give the lease up; False when it had already expired (and maybe been taken)."""
        return bool(self._release(keys=[lease.key], args=[lease.value]))

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the current one (the fencing check)."""
        current = self.redis.get(lease.key)
        return current is not None and _text(current) == lease.value

    def holder(self, name: str) -> Holder | None:
        """The current holder of ``name``, if any."""
        key = self.key(name)
        with self.redis.pipeline() as pipe:
            value, ttl_ms = pipe.get(key).pttl(key).execute()
        if value is None:
            return None
        token, _, owner = _text(value).partition(":")
        return Holder(int(token), owner, int(ttl_ms))

    @contextmanager
    def hold(self, name: str, *, owner: str | None = None) -> Iterator[HeldLease | None]:
        """Hold the lease on ``name`` for the block, renewing it; yields None if it is taken."""
        lease = self.acquire(name, owner=owner)
        if lease is None:
            yield None
            return
        held = HeldLease(self, lease)
        held.start()
        log.debug("lease.acquired", lease=name, token=lease.token)
        try:
            yield held
        finally:
            held.stop()
            released = self.release(lease)
            log.debug("lease.released", lease=name, token=lease.token, released=released)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class HeldLease:
    """A lease being held: a daemon thread renews it every ttl/3 until :meth:`stop`."""

    leases: Leases
    lease: Lease
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @property
    def token(self) -> int:
        """The fencing token of this lease."""
        return self.lease.token

    def start(self) -> None:
        """Start renewing in the background."""
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease:{self.lease.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the caller releases)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self) -> None:
        """Raise LeaseLost unless this lease is still the current one."""
        if self.lost.is_set() or not self.leases.holds(self.lease):
            self.lost.set()
            raise LeaseLost(self.lease.name, self.lease.token)

    def _renew_loop(self) -> None:
        interval = self.lease.ttl_ms / 3000.0
        while not self._stop.wait(interval):
            try:
                renewed = self.leases.renew(self.lease)
            except Exception as exc:  # Redis blip: keep trying until the lease runs out
                log.warning("lease.renew_failed", lease=self.lease.name, error=type(exc).__name__)
                continue
            if not renewed:
                self.lost.set()
                log.warning("lease.lost", lease=self.lease.name, token=self.lease.token)
                return
