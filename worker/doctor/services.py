"""Doctor checks that need no API call: the configuration, the database and Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from worker.athena.responses import truncate
from worker.athena.tokens import RedisTokenCache
from worker.athena.transport import check_url
from worker.db import current_revision, head_revision, known_revision, make_engine
from worker.doctor.redact import mask, redact_url
from worker.doctor.report import Check, Verdict
from worker.settings import ENVIRONMENT_HOSTS, Settings, SettingsError


def _config(name: str, value: str | None, verdict: Verdict) -> Check:
    return Check("configuration", name, verdict, value=value)


def _endpoint_rows(settings: Settings) -> list[Check]:
    base, token = settings.athena_base_url, settings.athena_token_url
    rows = []
    for name, url in (("ATHENA_BASE_URL", base), ("ATHENA_TOKEN_URL", token)):
        try:
            check_url(name, url)
        except SettingsError:
            verdict = Verdict("fail", "plain http to a non-loopback host", "use an https URL")
            rows.append(_config(name, redact_url(url), verdict))
    if rows:
        return rows
    known = {url: env for env, url in ENVIRONMENT_HOSTS.items()}
    where = known.get(base.rstrip("/"))
    if where is None:
        text = f"custom API host ({settings.athena_environment} keys assumed), e.g. the sandbox"
        verdict = Verdict("ok", text)
    elif where != settings.athena_environment:
        verdict = Verdict(
            "warn",
            f"a {where} host while ATHENA_ENVIRONMENT={settings.athena_environment}",
            "set ATHENA_ENVIRONMENT to match the host, or unset ATHENA_BASE_URL",
        )
    else:
        verdict = Verdict("ok", f"athenahealth {where}")
    return [
        _config("ATHENA_BASE_URL", redact_url(base), verdict),
        _config("ATHENA_TOKEN_URL", redact_url(token), Verdict("ok", "token endpoint")),
    ]


def configuration(settings: Settings, practices: tuple[str, ...]) -> list[Check]:
    """What is set (secrets only as set / not set) and whether the sync can start with it."""
    rows = [
        _config("ATHENA_ENVIRONMENT", settings.athena_environment, Verdict("ok", "environment")),
        *_endpoint_rows(settings),
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


CONNECT_TIMEOUT_SECONDS = 5


def _db(verdict: Verdict, shown: str) -> Check:
    return Check("database", "DATABASE_URL", verdict, value=shown)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for in-memory)."""
    database = sa.engine.make_url(url).database
    return Path(database) if database and database != ":memory:" else None


def database(settings: Settings) -> Check:
    """Reachable (within a few seconds), and at the newest migration."""
    url = settings.database_url
    shown = redact_url(url)
    try:
        sqlite = sa.engine.make_url(url).get_backend_name() == "sqlite"
        if sqlite and (path := _sqlite_file(url)) is not None and not path.exists():
            return _db(
                Verdict(
                    "fail", f"no SQLite file at {path}", "run `athena-sync db upgrade` to create it"
                ),
                shown,
            )
        timeout = {} if sqlite else {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}}
        engine = make_engine(url, **timeout)
    except Exception as exc:  # a malformed URL or a missing driver: say which
        return _db(Verdict("fail", f"unusable URL ({_first_line(exc)})", "fix DATABASE_URL"), shown)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        found, wanted = current_revision(engine), head_revision()
    except sa.exc.SQLAlchemyError as exc:
        verdict = Verdict(
            "fail", f"cannot connect ({_first_line(exc)})", "start the database or fix DATABASE_URL"
        )
        return _db(verdict, shown)
    finally:
        engine.dispose()
    kind = (
        "SQLite file (fine for the demo; use PostgreSQL in production)" if sqlite else "PostgreSQL"
    )
    if found == wanted:
        return _db(Verdict("ok", f"{kind}, reachable, schema at {wanted}"), shown)
    if found is not None and not known_revision(found):
        verdict = Verdict(
            "fail",
            f"schema at revision {found}, unknown to this version ({wanted})",
            "a newer athena-sync migrated it: upgrade athena-sync",
        )
        return _db(verdict, shown)
    verdict = Verdict(
        "fail",
        f"schema at revision {found or 'none'}, this version needs {wanted}",
        "run `athena-sync db upgrade`",
    )
    return _db(verdict, shown)


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

    shown = redact_url(settings.redis_url)
    try:
        client = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    except ValueError as exc:
        return _redis(
            Verdict(
                "fail",
                f"unusable URL ({truncate(str(exc), 120)})",
                "fix REDIS_URL (e.g. redis://localhost:6379/0)",
            ),
            shown,
        ), None
    try:
        client.ping()
        # Workers write here (token, budget, leases): a read-only or full Redis must show.
        client.set(f"{settings.redis_key_prefix}:doctor:write-check", "1", ex=10)
        cache = RedisTokenCache(client, token_key) if token_key else None
        cached = cache.load() if cache is not None else None
        refused = cache.refusal() if cache is not None else None
    except RedisError as exc:
        client.close()
        verdict = Verdict(
            "fail",
            f"Redis refused ({_first_line(exc)})",
            "start Redis, fix REDIS_URL, or free memory / use a writable primary",
        )
        return _redis(verdict, shown), None
    if cached is None:
        text = "reachable; no token cached (the next worker mints one)"
    else:
        left = _minutes(cached.expires_at - time.time())
        text = f"reachable; a shared token is cached, expires in {left}"
    if refused is not None:
        text += (
            "; workers hold off minting: the token endpoint refused these credentials "
            "within the last minute"
        )
    return _redis(Verdict("ok", text), shown), client


def _redis(verdict: Verdict, shown: str | None = None) -> Check:
    return Check("redis", "REDIS_URL", verdict, value=shown)


def _minutes(seconds: float) -> str:
    return f"{max(seconds, 0) / 60:.0f} min"
