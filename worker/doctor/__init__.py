"""`athena-sync doctor`: whether credentials, practices, endpoints and services work, and why not.

Order: configuration, database, Redis (and its cached token), one token mint, the key's practice
list, then per practice ``/ping`` and one small page of every endpoint the sync reads. A step
that cannot run because an earlier one failed is reported as skipped, with the reason.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from redis.exceptions import RedisError

from worker.athena.broker import Minted
from worker.athena.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from worker.athena.tokens import RedisTokenCache, Token, cache_key
from worker.athena.transport import build_session
from worker.doctor.athena import mint, practice_checks, practice_list
from worker.doctor.probes import PROBE_READ_TIMEOUT, Prober
from worker.doctor.redact import redact_url
from worker.doctor.report import Check, Report, Verdict
from worker.doctor.services import configuration, database, redis_check
from worker.settings import Settings
from worker.sync.plan import default_window

__all__ = ["Report", "run_doctor"]


def _version() -> str:
    try:
        return version("athena-sync")
    except PackageNotFoundError:
        return "unknown"


def _token_key(settings: Settings) -> str | None:
    if not settings.athena_client_id:
        return None
    return cache_key(
        settings.redis_key_prefix,
        settings.athena_token_url,
        settings.athena_client_id,
        settings.athena_scope,
    )


def _skipped(reason: str, practices: tuple[str, ...]) -> list[Check]:
    verdict = Verdict("skip", reason)
    rows = [Check("practices", "/practiceinfo", verdict, practice_id="1")]
    return rows + [Check("practice", "/ping", verdict, practice_id=pid) for pid in practices]


class _FallbackLimiter:
    """The shared Redis budget, or this process's own if Redis starts refusing mid-run."""

    def __init__(self, shared: RateLimiter, local: RateLimiter) -> None:
        self._shared: RateLimiter | None = shared
        self._local = local

    def acquire(self, key: str) -> None:
        if self._shared is not None:
            try:
                self._shared.acquire(key)
                return
            except RedisError:
                self._shared = None
        self._local.acquire(key)


def _limiter(settings: Settings, redis: Any) -> RateLimiter:
    """The sync's own budget, shared through Redis when it is up: probes never starve workers."""
    rate, burst = settings.rate_limit_rps, settings.rate_limit_burst
    local = LocalRateLimiter(rate=rate, burst=burst)
    if redis is None:
        return local
    shared = RedisRateLimiter(redis, prefix=settings.redis_key_prefix, rate=rate, burst=burst)
    return _FallbackLimiter(shared, local)


def _share(cache: RedisTokenCache | None, token_row: Check, minted: Minted | None) -> Token | None:
    """The workers' cached token; a newly minted one is stored for them if none is cached."""
    if cache is None:
        return None
    try:
        cached = cache.load()
        if minted is not None and cached is None and token_row.status == "ok":
            cache.store(minted.token)  # workers reuse it instead of minting again
        return cached
    except RedisError:
        return None


def _api_checks(
    settings: Settings,
    chosen: tuple[str, ...],
    redis: Any,
    token_key: str | None,
    today: date | None,
) -> tuple[list[Check], list[tuple[str, str]]]:
    session = build_session(settings)
    try:
        token_row, minted = mint(_quick(settings), session)
        cache = RedisTokenCache(redis, token_key) if redis and token_key else None
        cached = _share(cache, token_row, minted)
        token = minted.token if minted is not None else cached
        if token is None or not token.usable(time.time()):
            return [token_row, *_skipped("not probed: no token", chosen)], []
        if minted is None:
            step = f"{token_row.verdict.next_step}; probing with the workers' shared token instead"
            token_row = replace(token_row, verdict=replace(token_row.verdict, next_step=step))
        prober = Prober(
            session,
            settings.athena_base_url,
            token.access_token,
            _limiter(settings, redis),
            (settings.connect_timeout_seconds, PROBE_READ_TIMEOUT),
        )
        list_row, visible, whole = practice_list(prober)
        checks = [token_row, list_row]
        known = {pid for pid, _ in visible} if whole and list_row.status == "ok" else None
        window = default_window(
            today or datetime.now(UTC).date(),
            days_back=settings.sync_days_back,
            days_ahead=settings.sync_days_ahead,
        )
        for pid in chosen:
            checks += practice_checks(
                prober,
                pid,
                visible=known,
                window=window,
                source=settings.sync_appointments_source,
                auto=settings.athena_auto_subscribe,
            )
        return checks, visible
    finally:
        session.close()


def _quick(settings: Settings) -> Settings:
    """The settings with the read timeout capped: a diagnostic should answer quickly."""
    read = min(settings.read_timeout_seconds, PROBE_READ_TIMEOUT)
    return settings.with_overrides(read_timeout_seconds=read)


def run_doctor(
    settings: Settings, *, practices: tuple[str, ...] = (), today: date | None = None
) -> Report:
    """Run every check and return the report (nothing is printed here)."""
    chosen = tuple(dict.fromkeys(practices or settings.athena_practice_ids))
    checks = configuration(settings, chosen)
    checks.append(database(settings))
    token_key = _token_key(settings)
    redis_row, redis = redis_check(settings, token_key)
    checks.append(redis_row)
    visible: list[tuple[str, str]] = []
    blocking = [
        c.name
        for c in checks
        if c.section == "configuration"
        and c.status == "fail"
        and c.name.startswith(("ATHENA_CLIENT", "ATHENA_BASE", "ATHENA_TOKEN"))
    ]
    if blocking:
        reason = f"not tried: {', '.join(blocking)} must be fixed first"
        checks.append(Check("token", "token endpoint", Verdict("skip", reason)))
        checks += _skipped(reason, chosen)
    else:
        api_rows, visible = _api_checks(settings, chosen, redis, token_key, today)
        checks += api_rows
    if redis is not None:
        redis.close()
    return Report(
        generated_at=datetime.now(UTC),
        version=_version(),
        environment=settings.athena_environment,
        base_url=redact_url(settings.athena_base_url),
        token_url=redact_url(settings.athena_token_url),
        checks=tuple(checks),
        visible_practices=tuple(visible),
    )
