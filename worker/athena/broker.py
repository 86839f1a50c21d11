"""The token broker: one token for every worker, minted single-flight, refreshed ahead of expiry.

Flow of :meth:`TokenBroker.current`:
1. a fresh cached token is returned as is;
2. otherwise try the mint lock; the holder re-reads the cache (double-check) and mints only if
   still needed, retrying the token endpoint's 429/5xx/timeouts with backoff (extending its lock);
3. a worker that loses the race keeps using a stale-but-unexpired token, or polls the cache every
   ``poll_seconds`` until the new token appears or the lock expires and it can take over.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
import structlog
from requests.auth import HTTPBasicAuth

from worker import metrics
from worker.athena.errors import AthenaError, AuthError, FatalError, RetriableError
from worker.athena.responses import decode_response, transport_error
from worker.athena.retry import RetryPolicy, call_with_retries
from worker.athena.stats import ClientStats
from worker.athena.tokens import Token, TokenCache
from worker.settings import Settings

log = structlog.get_logger()
DEFAULT_EXPIRES_IN = 3600.0
# After the token endpoint refuses the credentials, nobody asks again for this long: a retry
# loop across workers would burn the per-minute mint budget (5/min in preview) for nothing.
REFUSAL_SECONDS = 60.0


@dataclass(frozen=True)
class Minted:
    """One answer of the token endpoint: the token plus what a diagnostic may show of it."""

    token: Token
    expires_in: float
    scope: str | None
    request_id: str


class TokenBroker:
    """Hands out the shared access token; mints it when missing, stale or rejected."""

    def __init__(
        self,
        settings: Settings,
        *,
        cache: TokenCache,
        session: requests.Session,
        stats: ClientStats,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 0.05,
    ) -> None:
        client_id, secret = settings.require_credentials()
        self._auth = HTTPBasicAuth(client_id, secret)
        self._url = settings.athena_token_url
        self._path = urlsplit(self._url).path or "/"
        self._host = urlsplit(self._url).hostname or ""
        self._scope = settings.athena_scope
        self._margin = float(settings.token_refresh_margin_seconds)
        self._timeouts = (settings.connect_timeout_seconds, settings.read_timeout_seconds)
        self._policy = RetryPolicy.from_settings(settings)
        self._lock_ttl = sum(self._timeouts) + 5.0
        self._cache = cache
        self._session = session
        self._stats = stats
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._poll = poll_seconds

    def current(self) -> Token:
        """A token to send: the cached one if fresh, else a newly minted (or newly cached) one."""
        cached = self._cache.load()
        if cached is not None and cached.fresh(self._clock()):
            return cached
        return self._refresh(cached)

    def invalidate(self, token: Token) -> bool:
        """Forget ``token`` (after a 401) unless another worker already replaced it."""
        return self._cache.discard(token.access_token)

    def _refresh(self, stale: Token | None) -> Token:
        self._check_refusal()
        give_up = time.monotonic() + self._lock_ttl * max(2, self._policy.max_attempts)
        while True:
            handle = self._cache.try_lock(self._lock_ttl)
            if handle is not None:
                try:
                    return self._mint_holding(handle)
                finally:
                    self._cache.unlock(handle)
            if stale is not None and stale.usable(self._clock()):
                return stale  # someone else is refreshing; the old token still works meanwhile
            time.sleep(self._poll)  # real time: waiting on another worker, not a backoff
            cached = self._cache.load()
            if cached is not None and cached.usable(self._clock()):
                return cached
            if time.monotonic() > give_up:
                raise RetriableError("timed out waiting for another worker to mint a token")

    def _check_refusal(self) -> None:
        message = self._cache.refusal()
        if message is not None:
            raise AuthError(
                f"the token endpoint refused these credentials within the last "
                f"{REFUSAL_SECONDS:.0f} s; not asking again yet ({message})",
                path=self._path,
            )

    def _mint_holding(self, handle: str) -> Token:
        cached = self._cache.load()
        if cached is not None and cached.fresh(self._clock()):
            return cached  # double-check: minted while we were taking the lock
        self._check_refusal()  # double-check the refusal too: a waiter may take the lock next

        def on_retry(attempt: int, error: RetriableError, wait: float) -> None:
            self._cache.extend_lock(handle, wait + self._lock_ttl)
            log.warning(
                "athena.token_retried",
                attempt=attempt,
                status=error.status,
                wait_seconds=round(wait, 3),
                token_host=self._host,
                request_id=error.request_id,
            )

        try:
            token = call_with_retries(
                lambda: self.mint_once().token,
                policy=self._policy,
                sleep=self._sleep,
                rng=self._rng,
                on_retry=on_retry,
            )
        except AuthError as refused:
            self._cache.remember_refusal(
                f"status={refused.status} error={refused.api_error!r}", REFUSAL_SECONDS
            )
            raise
        self._cache.store(token)
        return token

    def mint_once(self) -> Minted:
        """One request to the token endpoint: no cache, no lock, no retry (``doctor`` uses it)."""
        request_id = str(uuid.uuid4())
        try:
            response = self._session.post(
                self._url,
                data={"grant_type": "client_credentials", "scope": self._scope},
                auth=self._auth,
                headers={"Accept": "application/json", "X-Request-Id": request_id},
                timeout=self._timeouts,
            )
        except requests.RequestException as exc:
            metrics.token_request("error")
            raise transport_error(
                exc,
                path=self._path,
                practice_id=None,
                timeouts=self._timeouts,
                request_id=request_id,
            ) from None
        metrics.token_request(response.status_code)
        if response.status_code == 429:
            self._stats.bump("throttled")
        try:
            body = decode_response(response, path=self._path, practice_id=None, token_endpoint=True)
        except AthenaError as error:
            error.request_id = error.request_id or request_id  # a 200 HTML page names none
            raise
        access_token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(access_token, str) or not access_token:
            raise FatalError(
                "token endpoint answered without an access_token",
                status=response.status_code,
                path=self._path,
                request_id=request_id,
            )
        expires_in = _seconds(body.get("expires_in"))
        self._stats.bump("token_mints")
        log.info(
            "athena.token_minted",
            expires_in=expires_in,
            token_host=self._host,
            request_id=request_id,
        )
        token = Token.minted(access_token, expires_in, now=self._clock(), margin=self._margin)
        scope = body.get("scope")
        return Minted(token, expires_in, scope if isinstance(scope, str) else None, request_id)


def _seconds(value: Any) -> float:
    """expires_in as seconds; the documented one hour when missing or malformed."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return DEFAULT_EXPIRES_IN
    return seconds if seconds > 0 else DEFAULT_EXPIRES_IN
