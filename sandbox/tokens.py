"""Access tokens: minted by client credentials, limited per rolling minute, really expiring.

Tokens are random and never logged; only their count is reported.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

MINT_WINDOW_SECONDS = 60.0


class TokenState(Enum):
    """What a presented bearer token is."""

    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class MintLimited(Exception):
    """More mints in the rolling minute than allowed; ``retry_after`` whole seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class TokenIssuer:
    """Mints and checks bearer tokens."""

    def __init__(self, mints_per_minute: int, *, clock: Callable[[], float] = time.monotonic):
        self._limit = mints_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        self._mints: deque[float] = deque()
        self.minted = 0

    def mint(self, ttl_seconds: int) -> str:
        """A new token living ``ttl_seconds``; raises MintLimited over the per-minute limit."""
        with self._lock:
            now = self._clock()
            while self._mints and self._mints[0] <= now - MINT_WINDOW_SECONDS:
                self._mints.popleft()
            if len(self._mints) >= self._limit:
                wait = self._mints[0] + MINT_WINDOW_SECONDS - now
                raise MintLimited(max(1, math.ceil(wait)))
            self._mints.append(now)
            self.minted += 1
            token = secrets.token_urlsafe(32)
            self._expiry[token] = now + ttl_seconds
            self._forget_expired(now)
            return token

    def _forget_expired(self, now: float) -> None:
        # Keep expired tokens for an hour so they answer "expired" rather than "unknown".
        if len(self._expiry) > 1000:
            self._expiry = {t: e for t, e in self._expiry.items() if e > now - 3600}

    def check(self, token: str) -> TokenState:
        """Whether ``token`` is valid, expired or unknown."""
        expiry = self._expiry.get(token)
        if expiry is None:
            return TokenState.UNKNOWN
        return TokenState.VALID if self._clock() < expiry else TokenState.EXPIRED

    def expire_all(self) -> int:
        """Expire every issued token now; returns how many were still valid."""
        with self._lock:
            now = self._clock()
            live = sum(1 for e in self._expiry.values() if e > now)
            self._expiry = dict.fromkeys(self._expiry, now)
            return live
