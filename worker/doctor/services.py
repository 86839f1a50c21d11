"""Doctor checks that need no API call: the configuration, the database and Redis."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from worker.athena.responses import truncate
from worker.athena.tokens import RedisTokenCache
from worker.athena.transport import check_url
from worker.db import current_revision, head_revision, make_engine
from worker.doctor.report import Check, Verdict
from worker.settings import ENVIRONMENT_HOSTS, Settings, SettingsError


def mask(value: str) -> str:
    """An identifier shown by its ends only (``abcd…wxyz``); short ones fully hidden."""
    return f"{value[:4]}…{value[-4:]}" if len(value) >= 12 else "****"


def hide_password(url: str) -> str:
    """A URL with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def _config(name: str, value: str | None, verdict: Verdict) -> Check:
    return Check("configuration", name, verdict, value=value)


def _endpoint_row(settings: Settings) -> Check:
    base = settings.athena_base_url
    known = {url: env for env, url in ENVIRONMENT_HOSTS.items()}
    where = known.get(base.rstrip("/"))
    try:
        check_url("ATHENA_BASE_URL", base)
        check_url("ATHENA_TOKEN_URL", settings.athena_token_url)
    except SettingsError as exc:
        return _config("ATHENA_BASE_URL", base, Verdict("fail", str(exc), "use an https URL"))
    if where is None:
        text = f"custom API host ({settings.athena_environment} keys assumed), e.g. the sandbox"
        return _config("ATHENA_BASE_URL", base, Verdict("ok", text))
    if where != settings.athena_environment:
        return _config(
            "ATHENA_BASE_URL",
            base,
            Verdict(
                "warn",
                f"a {where} host while ATHENA_ENVIRONMENT={settings.athena_environment}",
                "set ATHENA_ENVIRONMENT to match the host, or unset ATHENA_BASE_URL",
            ),
        )
    return _config("ATHENA_BASE_URL", base, Verdict("ok", f"athenahealth {where}"))


def configuration(settings: Settings, practices: tuple[str, ...]) -> list[Check]:
    """What is set (secrets only as set / not set) and whether the sync can start with it."""
    rows = [
        _config("ATHENA_ENVIRONMENT", settings.athena_environment, Verdict("ok", "environment")),
        _endpoint_row(settings),
        _config("ATHENA_TOKEN_URL", settings.athena_token_url, Verdict("ok", "token endpoint")),
    ]
    client_id, secret = settings.athena_client_id, settings.athena_client_secret
    missing = Verdict("fail", "not set", "set it to the key's value from the developer portal")
    rows.append(
        _config("ATHENA_CLIENT_ID", mask(client_id), Verdict("ok", "set"))
        if client_id
        else _config("ATHENA_CLIENT_ID", None, missing)
    )
    rows.append(
        _config("ATHENA_CLIENT_SECRET", "(hidden)", Verdict("ok", "set"))
        if secret
        else _config("ATHENA_CLIENT_SECRET", None, missing)
    )
    rows.append(_practices_row(settings, practices))
    rows.append(_config("ATHENA_SCOPE", settings.athena_scope, Verdict("ok", "scope requested")))
    return rows


def _practices_row(settings: Settings, practices: tuple[str, ...]) -> Check:
    shown = ",".join(practices) or None
    if not practices:
        return _config(
            "ATHENA_PRACTICE_IDS",
            None,
            Verdict(
                "fail",
                "no practice to sync",
                "set ATHENA_PRACTICE_IDS (or pass --practice) to ids from the practice list",
            ),
        )
    if practices != settings.athena_practice_ids:
        return _config("ATHENA_PRACTICE_IDS", shown, Verdict("ok", "overridden by --practice"))
    return _config("ATHENA_PRACTICE_IDS", shown, Verdict("ok", "practices to sync"))


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines() or [type(original).__name__]
    return truncate(f"{type(original).__name__}: {lines[0]}", 160)


def database(settings: Settings) -> Check:
    """Reachable, and at the newest migration."""
    url = settings.database_url
    shown = hide_password(url)
    kind = (
        "SQLite file (fine for the demo; use PostgreSQL in production)"
        if url.startswith("sqlite")
        else "PostgreSQL"
    )
    try:
        engine = make_engine(url)
    except Exception as exc:  # a malformed URL or a missing driver: say which
        return Check(
            "database",
            "DATABASE_URL",
            Verdict("fail", f"unusable URL ({_first_line(exc)})", "fix DATABASE_URL"),
            value=shown,
        )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        found, wanted = current_revision(engine), head_revision()
    except sa.exc.SQLAlchemyError as exc:
        return Check(
            "database",
            "DATABASE_URL",
            Verdict(
                "fail",
                f"cannot connect ({_first_line(exc)})",
                "start the database or fix DATABASE_URL",
            ),
            value=shown,
        )
    finally:
        engine.dispose()
    if found != wanted:
        return Check(
            "database",
            "DATABASE_URL",
            Verdict(
                "fail",
                f"schema at revision {found or 'none'}, this version needs {wanted}",
                "run `athena-sync db upgrade`",
            ),
            value=shown,
        )
    return Check(
        "database",
        "DATABASE_URL",
        Verdict("ok", f"{kind}, reachable, schema at {wanted}"),
        value=shown,
    )


def redis_check(settings: Settings, token_key: str | None) -> tuple[Check, Any]:
    """Reachable, and whether a shared token is cached; also returns the client (or None)."""
    if not settings.redis_url:
        return Check(
            "redis",
            "REDIS_URL",
            Verdict(
                "skip",
                "not set: the CLI runs alone, with an in-process token and budget",
                "set REDIS_URL for Celery workers: they share one token, one budget and leases",
            ),
        ), None
    from redis import Redis
    from redis.exceptions import RedisError

    shown = hide_password(settings.redis_url)
    client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
        cached = RedisTokenCache(client, token_key).load() if token_key else None
    except RedisError as exc:
        return Check(
            "redis",
            "REDIS_URL",
            Verdict(
                "fail", f"cannot reach Redis ({_first_line(exc)})", "start Redis or fix REDIS_URL"
            ),
            value=shown,
        ), None
    if cached is None:
        text = "reachable; no token cached (the next worker mints one)"
    else:
        left = _minutes(cached.expires_at - time.time())
        text = f"reachable; a shared token is cached, expires in {left}"
    return Check("redis", "REDIS_URL", Verdict("ok", text), value=shown), client


def _minutes(seconds: float) -> str:
    return f"{max(seconds, 0) / 60:.0f} min"
