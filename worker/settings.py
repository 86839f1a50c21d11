"""One frozen settings object, read from the environment (and a ``.env`` file) and validated once.

This is the only module that reads ``os.environ``. Every error names the variable at fault.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ENVIRONMENT_HOSTS: dict[str, str] = {
    "preview": "https://api.preview.platform.athenahealth.com",
    "production": "https://api.platform.athenahealth.com",
}
DEFAULT_SCOPE = "athena/service/Athenanet.MDP.*"
DEFAULT_DATABASE_URL = "sqlite:///athena_sync.db"
DEFAULT_METRICS_PORT = 9808
"""The port of ``athena-sync metrics serve`` when neither ``--port`` nor METRICS_PORT says."""


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Everything configurable, validated. Build it with :func:`load_settings`."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_key_prefix: str = "athena-sync"

    athena_environment: str = "preview"
    athena_base_url: str = ENVIRONMENT_HOSTS["preview"]
    athena_token_url: str = ENVIRONMENT_HOSTS["preview"] + "/oauth2/v1/token"
    athena_client_id: str | None = None
    athena_client_secret: str | None = field(default=None, repr=False)
    athena_scope: str = DEFAULT_SCOPE
    athena_practice_ids: tuple[str, ...] = ()

    page_limit: int = 1000
    rate_limit_rps: float = 5.0
    rate_limit_burst: int = 5
    max_attempts: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    retry_after_cap_seconds: float = 120.0
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    token_refresh_margin_seconds: int = 300

    sync_days_back: int = 7
    sync_days_ahead: int = 90
    sync_window_days: int = 31
    sync_lastmodified_overlap_seconds: int = 300
    sync_clock_skew_seconds: int = 60
    sync_appointments_source: str = "changed"
    sync_multi_department: bool = True
    sync_subscription_recheck_seconds: int = 600
    sync_feed_recovery_hours: int = 2
    athena_auto_subscribe: bool = False

    dead_letter_retention_days: int = 30
    sync_runs_retention_days: int = 30
    dead_letter_max_attempts: int = 10

    schedule_reference_minutes: int = 180
    schedule_appointments_minutes: int = 5
    schedule_changes_minutes: int = 1
    schedule_reconcile_cron: str = "30 3 * * *"
    schedule_replay_minutes: int = 30
    task_soft_time_limit_seconds: int = 1500
    task_time_limit_seconds: int = 1800
    lease_seconds: int = 300
    task_max_retries: int = 5
    task_retry_base_seconds: float = 10.0

    log_level: str = "INFO"
    log_format: str = "console"

    freshness_warn_minutes: int = 15
    freshness_error_minutes: int = 60
    metrics_port: int | None = None
    """Port a worker serves ``/metrics`` on; None: no metrics (nothing recorded either)."""

    def require_credentials(self) -> tuple[str, str]:
        """Return (client id, secret) or raise naming the missing variable."""
        if not self.athena_client_id:
            raise SettingsError("ATHENA_CLIENT_ID", "is required to call the athenahealth API")
        if not self.athena_client_secret:
            raise SettingsError("ATHENA_CLIENT_SECRET", "is required to call the athenahealth API")
        return self.athena_client_id, self.athena_client_secret

    def require_practices(self) -> tuple[str, ...]:
        """Return the configured practice ids or raise naming ATHENA_PRACTICE_IDS."""
        if not self.athena_practice_ids:
            raise SettingsError("ATHENA_PRACTICE_IDS", "is empty; list practice ids, e.g. 195900")
        return self.athena_practice_ids

    def require_redis_url(self) -> str:
        """The Celery broker / result backend URL, or a SettingsError naming REDIS_URL."""
        if not self.redis_url:
            raise SettingsError(
                "REDIS_URL", "is required to run the worker or beat and to enqueue tasks"
            )
        return self.redis_url

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (used by demo and tests)."""
        return replace(self, **changes)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(name, f"must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(name, f"must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(name, f"must be at least {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (_text(env, name) or "").lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = (_text(env, name) or default).lower()
    if raw not in {c.lower() for c in choices}:
        raise SettingsError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _text(env, name) or default
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(name, f"must be an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _practices(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _text(env, "ATHENA_PRACTICE_IDS") or ""
    ids = tuple(part.strip() for part in raw.replace(";", ",").split(",") if part.strip())
    for practice_id in ids:
        if not practice_id.isdigit():
            raise SettingsError("ATHENA_PRACTICE_IDS", f"{practice_id!r} is not a numeric id")
    return tuple(dict.fromkeys(ids))


def _athena(env: Mapping[str, str]) -> dict[str, Any]:
    environment = _choice(env, "ATHENA_ENVIRONMENT", "preview", tuple(ENVIRONMENT_HOSTS))
    base_url = _url(env, "ATHENA_BASE_URL", ENVIRONMENT_HOSTS[environment])
    return {
        "athena_environment": environment,
        "athena_base_url": base_url,
        "athena_token_url": _url(env, "ATHENA_TOKEN_URL", base_url + "/oauth2/v1/token"),
        "athena_client_id": _text(env, "ATHENA_CLIENT_ID"),
        "athena_client_secret": _text(env, "ATHENA_CLIENT_SECRET"),
        "athena_scope": _text(env, "ATHENA_SCOPE") or DEFAULT_SCOPE,
        "athena_practice_ids": _practices(env),
    }


def _client(env: Mapping[str, str]) -> dict[str, Any]:
    page_limit = _int(env, "ATHENA_PAGE_LIMIT", 1000, minimum=1)
    if page_limit > 5000:
        raise SettingsError("ATHENA_PAGE_LIMIT", f"must be at most 5000, got {page_limit}")
    return {
        "page_limit": page_limit,
        "rate_limit_rps": _float(env, "ATHENA_RATE_LIMIT_RPS", 5.0, minimum=0.01),
        "rate_limit_burst": _int(env, "ATHENA_RATE_LIMIT_BURST", 5, minimum=1),
        "max_attempts": _int(env, "ATHENA_MAX_ATTEMPTS", 5, minimum=1),
        "backoff_base_seconds": _float(env, "ATHENA_BACKOFF_BASE_SECONDS", 0.5),
        "backoff_max_seconds": _float(env, "ATHENA_BACKOFF_MAX_SECONDS", 30.0),
        "retry_after_cap_seconds": _float(env, "ATHENA_RETRY_AFTER_CAP_SECONDS", 120.0),
        "connect_timeout_seconds": _float(env, "ATHENA_CONNECT_TIMEOUT", 5.0, minimum=0.1),
        "read_timeout_seconds": _float(env, "ATHENA_READ_TIMEOUT", 60.0, minimum=0.1),
        "token_refresh_margin_seconds": _int(env, "ATHENA_TOKEN_REFRESH_MARGIN", 300),
    }


# athenahealth serves processed changed-feed records again for a limited time only.
MAX_FEED_RECOVERY_HOURS = 6


def _sync(env: Mapping[str, str]) -> dict[str, Any]:
    window = _int(env, "SYNC_WINDOW_DAYS", 31, minimum=1)
    if window > 31:
        raise SettingsError("SYNC_WINDOW_DAYS", f"must be at most 31 (one month), got {window}")
    recovery = _int(env, "SYNC_FEED_RECOVERY_HOURS", 2, minimum=1)
    if recovery > MAX_FEED_RECOVERY_HOURS:
        problem = (
            f"must be at most {MAX_FEED_RECOVERY_HOURS} (athenahealth keeps processed "
            f"changed-feed records a limited time), got {recovery}"
        )
        raise SettingsError("SYNC_FEED_RECOVERY_HOURS", problem)
    return {
        "sync_days_back": _int(env, "SYNC_DAYS_BACK", 7),
        "sync_days_ahead": _int(env, "SYNC_DAYS_AHEAD", 90),
        "sync_window_days": window,
        "sync_lastmodified_overlap_seconds": _int(env, "SYNC_LASTMODIFIED_OVERLAP_SECONDS", 300),
        "sync_clock_skew_seconds": _int(env, "SYNC_CLOCK_SKEW_SECONDS", 60),
        "sync_appointments_source": _choice(
            env, "SYNC_APPOINTMENTS_SOURCE", "changed", ("changed", "booked")
        ),
        "sync_multi_department": _flag(env, "SYNC_MULTI_DEPARTMENT", True),
        "sync_subscription_recheck_seconds": _int(
            env, "SYNC_SUBSCRIPTION_RECHECK_SECONDS", 600, minimum=1
        ),
        "sync_feed_recovery_hours": recovery,
        "athena_auto_subscribe": _flag(env, "ATHENA_AUTO_SUBSCRIBE", False),
        "dead_letter_retention_days": _int(env, "DEAD_LETTER_RETENTION_DAYS", 30, minimum=1),
        "sync_runs_retention_days": _int(env, "SYNC_RUNS_RETENTION_DAYS", 30, minimum=1),
        "dead_letter_max_attempts": _int(env, "DEAD_LETTER_MAX_ATTEMPTS", 10, minimum=1),
    }


def _schedule(env: Mapping[str, str]) -> dict[str, Any]:
    return {
        "schedule_reference_minutes": _int(env, "SCHEDULE_REFERENCE_MINUTES", 180, minimum=1),
        "schedule_appointments_minutes": _int(env, "SCHEDULE_APPOINTMENTS_MINUTES", 5, minimum=1),
        "schedule_changes_minutes": _int(env, "SCHEDULE_CHANGES_MINUTES", 1, minimum=1),
        "schedule_reconcile_cron": _text(env, "SCHEDULE_RECONCILE_CRON") or "30 3 * * *",
        "schedule_replay_minutes": _int(env, "SCHEDULE_REPLAY_MINUTES", 30, minimum=1),
        "task_soft_time_limit_seconds": _int(env, "TASK_SOFT_TIME_LIMIT", 1500, minimum=1),
        "task_time_limit_seconds": _int(env, "TASK_TIME_LIMIT", 1800, minimum=1),
        "lease_seconds": _int(env, "SYNC_LEASE_SECONDS", 300, minimum=5),
        "task_max_retries": _int(env, "TASK_MAX_RETRIES", 5),
        "task_retry_base_seconds": _float(env, "TASK_RETRY_BASE_SECONDS", 10.0, minimum=0.01),
    }


def _port(env: Mapping[str, str], name: str) -> int | None:
    if _text(env, name) is None:
        return None
    port = _int(env, name, 0, minimum=1)
    if port > 65535:
        raise SettingsError(name, f"must be a TCP port (1-65535), got {port}")
    return port


def _observability(env: Mapping[str, str]) -> dict[str, Any]:
    warn = _int(env, "FRESHNESS_WARN_MINUTES", 15, minimum=1)
    error = _int(env, "FRESHNESS_ERROR_MINUTES", 60, minimum=1)
    if error < warn:
        problem = f"must be at least FRESHNESS_WARN_MINUTES ({warn}), got {error}"
        raise SettingsError("FRESHNESS_ERROR_MINUTES", problem)
    return {
        "freshness_warn_minutes": warn,
        "freshness_error_minutes": error,
        "metrics_port": _port(env, "METRICS_PORT"),
    }


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Validate a mapping of environment variables into Settings."""
    if len(parts := (_text(env, "SCHEDULE_RECONCILE_CRON") or "30 3 * * *").split()) != 5:
        raise SettingsError("SCHEDULE_RECONCILE_CRON", f"needs 5 cron fields, got {len(parts)}")
    return Settings(
        database_url=_text(env, "DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=_text(env, "REDIS_URL"),
        redis_key_prefix=_text(env, "REDIS_KEY_PREFIX") or "athena-sync",
        **_athena(env),
        **_client(env),
        **_sync(env),
        **_schedule(env),
        **_observability(env),
        log_level=_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")).upper(),
        log_format=_choice(env, "LOG_FORMAT", "console", ("console", "json")),
    )


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Settings:
    """Read settings from ``.env`` (if present) overlaid by the real environment."""
    if env is None:
        merged = _dotenv(dotenv or Path.cwd() / ".env")
        merged.update(os.environ)
        env = merged
    return settings_from_env(env)
