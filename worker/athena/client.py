"""AthenaClient: authenticated, rate-limited, retried GETs, and the one paging loop."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import structlog
from redis import Redis

from worker import metrics
from worker.athena.broker import TokenBroker
from worker.athena.errors import AuthError, FatalError, RetriableError
from worker.athena.paging import Pager, totalcount_of
from worker.athena.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from worker.athena.responses import check_listing, decode_strictly, transport_error
from worker.athena.retry import RetryPolicy, call_with_retries
from worker.athena.stats import ClientStats
from worker.athena.tokens import MemoryTokenCache, RedisTokenCache, Token, TokenCache, cache_key
from worker.athena.transport import BearerAuth, build_session, check_url, rate_headers, server_time
from worker.jsonsafe import Storable
from worker.settings import Settings

log = structlog.get_logger()


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``number`` counts from 1; ``params`` is the query actually sent;
    ``server_time`` is the API's clock when its request was sent (None: no usable ``Date``)."""

    records: list[Any]
    offset: int
    totalcount: int | None
    number: int
    last: bool
    path: str
    params: dict[str, Any]
    server_time: datetime | None = None


@dataclass(frozen=True)
class Reply:
    """A decoded body and the API's clock when its request was sent (``Date`` less the exchange's
    duration, aware UTC; None when the response had no usable ``Date``)."""

    body: Any
    server_time: datetime | None
    strict: bool = False
    """Read by the strict decoder: no value in it a database cannot hold (``worker.jsonsafe``)."""


def _query(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Booleans as the API spells them (``true``/``false``); everything else as given."""
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in (params or {}).items()}


def _check_target(practice_id: str, path: str) -> None:
    if not str(practice_id).isdigit():
        raise FatalError(f"practice id must be numeric, got {practice_id!r}", path=path)
    if not path.startswith("/") or "?" in path or "//" in path:
        raise FatalError("path must be relative to /v1/{practiceid}, e.g. /departments", path=path)


def _fingerprint(records: list[Any]) -> str | None:
    """A cheap identity of a page (size, first and last row) to spot a server repeating itself."""
    if not records:
        return None
    edge = json.dumps([len(records), records[0], records[-1]], sort_keys=True, default=str)
    return hashlib.sha256(edge.encode()).hexdigest()


def _refreshable(error: AuthError) -> bool:
    """A plain 401 may be an expired token; 'Incorrect permissions.' never is."""
    return error.status == 401 and "permission" not in (error.api_error or "").lower()


class AthenaClient:
    """GETs against ``{base}/v1/{practiceid}``: authenticated, budgeted, retried, logged."""

    def __init__(
        self,
        settings: Settings,
        *,
        token_cache: TokenCache | None = None,
        rate_limiter: RateLimiter | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_url("ATHENA_BASE_URL", settings.athena_base_url)
        check_url("ATHENA_TOKEN_URL", settings.athena_token_url)
        self.settings = settings
        self.stats = ClientStats()
        self._session = session or build_session(settings)
        self._base = settings.athena_base_url.rstrip("/")
        self._timeouts = (settings.connect_timeout_seconds, settings.read_timeout_seconds)
        self._policy = RetryPolicy.from_settings(settings)
        self.clock_offset: timedelta | None = None
        """The API's clock less this machine's, from the latest response with a usable ``Date``
        (``server_time`` less the local time the request was sent); None before one."""
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._limiter = rate_limiter or LocalRateLimiter(
            rate=settings.rate_limit_rps, burst=settings.rate_limit_burst
        )
        self.tokens = TokenBroker(
            settings,
            cache=token_cache or MemoryTokenCache(),
            session=self._session,
            stats=self.stats,
            sleep=sleep,
            rng=self._rng,
            clock=clock,
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> AthenaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def get(
        self,
        practice_id: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        collection: str | None = None,
    ) -> Any:
        """GET ``/v1/{practice_id}{path}`` and return the decoded JSON (retried, authenticated).

        With ``collection``, a 200 that is not that listing's envelope is retried like a 5xx:
        the check runs inside each attempt, so every retry sends the request again.
        """
        return self.fetch(practice_id, path, params, collection=collection).body

    def fetch(
        self,
        practice_id: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        collection: str | None = None,
        once: bool = False,
    ) -> Reply:
        """As :meth:`get`, with the API's clock when the answered request was sent.

        ``once``: a single attempt (RetriesExhausted on a retriable failure), for a request that
        must not be sent again blindly: a read of a feed that marks what it serves.
        """
        return self.send("GET", practice_id, path, params, collection=collection, once=once)

    def send(
        self,
        method: str,
        practice_id: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        collection: str | None = None,
        once: bool = False,
    ) -> Reply:
        """One request (GET, POST, DELETE) below ``/v1/{practice_id}``, retried unless ``once``;
        a POST sends ``params`` as a form body, as athenahealth takes it."""
        _check_target(practice_id, path)
        query = _query(params)
        policy = replace(self._policy, max_attempts=1) if once else self._policy

        def attempt() -> Reply:
            reply = self._authorized(method, practice_id, path, query)
            if collection is not None:
                check_listing(reply.body, collection, path=path, practice_id=practice_id)
            return reply

        def on_retry(attempt: int, error: RetriableError, wait: float) -> None:
            self.stats.bump("retries")
            metrics.retry(practice_id, path)
            log.warning(
                "athena.request_retried",
                attempt=attempt,
                status=error.status,
                wait_seconds=round(wait, 3),
                path=path,
                practice_id=practice_id,
                request_id=error.request_id,
                reason=error.message,
            )

        return call_with_retries(
            attempt,
            policy=policy,
            sleep=self._sleep,
            rng=self._rng,
            on_retry=on_retry,
        )

    def paginate(
        self,
        practice_id: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        collection: str,
        limit: int | None = None,
    ) -> Iterator[Page]:
        """Yield the pages of a listing, one request at a time; the only paging loop."""
        pager: Pager | None = Pager(
            limit=limit or self.settings.page_limit, path=path, practice_id=practice_id
        )
        number = 0
        while pager is not None:
            query = {**_query(params), **pager.query()}
            reply = self.fetch(practice_id, path, query, collection=collection)
            body = reply.body
            records: list[Any] = body.get(collection, [])
            if reply.strict:
                records = Storable(records)
            totalcount = totalcount_of(body)
            following = pager.after(
                returned=len(records),
                totalcount=totalcount,
                next_link=body.get("next"),
                fingerprint=_fingerprint(records),
            )
            number += 1
            yield Page(
                records,
                pager.offset,
                totalcount,
                number,
                following is None,
                path,
                query,
                reply.server_time,
            )
            pager = following

    def _authorized(self, method: str, practice_id: str, path: str, query: dict[str, Any]) -> Reply:
        """Send with the shared token; on a plain 401 swap the token once and resend once."""
        token = self.tokens.current()
        try:
            return self._send(method, practice_id, path, query, token)
        except AuthError as error:
            if not _refreshable(error):
                raise
        self.tokens.invalidate(token)
        try:
            return self._send(method, practice_id, path, query, self.tokens.current())
        except AuthError as again:
            if again.status != 401:
                raise
            raise AuthError(
                "401 again with a newly minted token: check the credentials and that the key "
                "may access this practice",
                status=401,
                path=path,
                practice_id=practice_id,
                api_error=again.api_error,
                detail=again.detail,
                request_id=again.request_id,
            ) from None

    def _send(
        self, method: str, practice_id: str, path: str, query: dict[str, Any], token: Token
    ) -> Reply:
        """One HTTP request: take a budget slot, send, log the response, map it."""
        self._limiter.acquire(practice_id)
        request_id = str(uuid.uuid4())
        self.stats.bump("requests")
        sent_at = datetime.now(UTC)
        started = time.perf_counter()
        body = method == "POST"
        try:
            response = self._session.request(
                method,
                f"{self._base}/v1/{practice_id}{path}",
                params=None if body else query,
                data=query if body else None,
                auth=BearerAuth(token.access_token),
                headers={"Accept": "application/json", "X-Request-Id": request_id},
                timeout=self._timeouts,
            )
        except requests.RequestException as exc:
            metrics.request(practice_id, path, "error")
            raise transport_error(
                exc,
                path=path,
                practice_id=practice_id,
                timeouts=self._timeouts,
                request_id=request_id,
            ) from None
        elapsed = time.perf_counter() - started
        metrics.request(practice_id, path, response.status_code)
        log.debug(
            "athena.response",
            method=method,
            path=path,
            practice_id=practice_id,
            status=response.status_code,
            request_id=request_id,
            elapsed_ms=round(elapsed * 1000, 1),
            **rate_headers(response.headers),
        )
        if response.status_code == 429:
            self.stats.bump("throttled")
        clock = server_time(response.headers, elapsed=timedelta(seconds=elapsed))
        if clock is not None:  # any answer's Date tells the API's clock, an error's too
            self.clock_offset = clock - sent_at
        body, strict = decode_strictly(response, path=path, practice_id=practice_id)
        return Reply(body, clock, strict)


_LOCAL_LIMITERS: dict[tuple[str, float, int], LocalRateLimiter] = {}
_LOCAL_GUARD = threading.Lock()


def _local_limiter(settings: Settings) -> LocalRateLimiter:
    """One in-process limiter per (prefix, rate, burst), shared by this process's clients."""
    key = (settings.redis_key_prefix, settings.rate_limit_rps, settings.rate_limit_burst)
    with _LOCAL_GUARD:
        if key not in _LOCAL_LIMITERS:
            _LOCAL_LIMITERS[key] = LocalRateLimiter(rate=key[1], burst=key[2])
        return _LOCAL_LIMITERS[key]


def build_client(settings: Settings, *, redis: Redis | None = None, **kwargs: Any) -> AthenaClient:
    """A client sharing token and budget through Redis when configured, else in-process."""
    client_id, _ = settings.require_credentials()
    key = cache_key(
        settings.redis_key_prefix, settings.athena_token_url, client_id, settings.athena_scope
    )
    if redis is None and settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
    if redis is None:
        return AthenaClient(
            settings,
            token_cache=MemoryTokenCache.shared(key),
            rate_limiter=_local_limiter(settings),
            **kwargs,
        )
    limiter = RedisRateLimiter(
        redis,
        prefix=settings.redis_key_prefix,
        rate=settings.rate_limit_rps,
        burst=settings.rate_limit_burst,
    )
    return AthenaClient(
        settings, token_cache=RedisTokenCache(redis, key), rate_limiter=limiter, **kwargs
    )
