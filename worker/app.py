"""The Celery app ``app``, configured from ``celeryconfig.py`` (the same Settings as the rest).

Nothing here connects or reads settings at import: Celery loads ``celeryconfig`` the first time
the configuration is needed (worker or beat start, sending a task), and that is when a missing
``REDIS_URL`` raises :class:`~worker.settings.SettingsError`. The tasks live in ``tasks/`` (the
doors, above everything); nothing in ``worker/`` imports them, and task names appear as strings
only in the beat schedule below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab

from worker.logging import configure_logging
from worker.settings import Settings, load_settings

app = Celery("athena_sync")
app.config_from_object("celeryconfig")

QUEUE = "athena-sync"
TASKS = "tasks.sync_tasks"
RESULT_EXPIRES_SECONDS = 24 * 3600
# Retries of a unit task come from Settings (TASK_MAX_RETRIES, TASK_RETRY_BASE_SECONDS); the
# longest countdown is Settings.retry_after_cap_seconds (ATHENA_RETRY_AFTER_CAP_SECONDS).


def task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``app.task`` with a type mypy can check at the call site (Celery ships no types)."""
    decorator: Callable[[Callable[..., Any]], Any] = app.task(**options)
    return decorator


def require_redis_url(settings: Settings) -> str:
    """The broker and result backend URL, or a SettingsError naming REDIS_URL."""
    return settings.require_redis_url()


def retry_cap_seconds(settings: Settings) -> float:
    """The longest countdown a unit task waits before a retry (the Retry-After cap)."""
    return settings.retry_after_cap_seconds


def visibility_timeout(settings: Settings) -> int:
    """Seconds before Redis hands an unacknowledged message to another worker.

    An acks-late message stays unacknowledged while it waits for its countdown, then for a free
    pool slot (another task may run up to the hard limit), then while it runs (up to the hard
    limit): it must be longer than all three, or a live task is delivered twice.
    """
    return 2 * settings.task_time_limit_seconds + math.ceil(retry_cap_seconds(settings))


def key_prefix(settings: Settings) -> str:
    """Every broker and result key lives under the settings prefix (deployments share Redis)."""
    return f"{settings.redis_key_prefix}:celery:"


def broker_options(settings: Settings) -> dict[str, Any]:
    """Redis transport options: visibility timeout, restore sweep, key prefix."""
    visibility = visibility_timeout(settings)
    return {
        "visibility_timeout": visibility,
        # Sweep for messages of dead workers about ten times per visibility timeout.
        "unacked_restore_interval": max(1, min(60, visibility // 10)),
        "unacked_restore_throttle": 1,
        "global_keyprefix": key_prefix(settings),
    }


def cron(expression: str) -> crontab:
    """A crontab from five fields: minute hour day-of-month month day-of-week."""
    minute, hour, day_of_month, month_of_year, day_of_week = expression.split()
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def _every(minutes: int, name: str, **kwargs: Any) -> dict[str, Any]:
    # A tick nobody picked up before the next one is due is dropped, not piled up.
    return {
        "task": f"{TASKS}.{name}",
        "schedule": timedelta(minutes=minutes),
        "kwargs": kwargs,
        "options": {"expires": minutes * 60},
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The periodic work: reference data, the changed-data feeds (unless
    ``SYNC_APPOINTMENTS_SOURCE=booked``), appointments incremental (practices polled with the
    listing) and reconcile, replay."""
    changes = {}
    if settings.sync_appointments_source == "changed":
        changes["appointments-changes"] = _every(settings.schedule_changes_minutes, "sync_changes")
    return {
        "reference-data": _every(settings.schedule_reference_minutes, "sync_reference"),
        **changes,
        "appointments-incremental": _every(
            settings.schedule_appointments_minutes, "sync_appointments", mode="incremental"
        ),
        "appointments-reconcile": {
            "task": f"{TASKS}.sync_appointments",
            "schedule": cron(settings.schedule_reconcile_cron),
            "kwargs": {"mode": "reconcile"},
            "options": {"expires": 12 * 3600},
        },
        "dead-letter-replay": _every(settings.schedule_replay_minutes, "replay_dead_letters"),
    }


def _configure_logging(**_: Any) -> None:
    configure_logging(load_settings())


# Celery keeps its own stdlib logging (worker_hijack_root_logger=False); our events go through
# structlog, configured in the main process of worker and beat and in every pool process.
for _signal in (signals.worker_init, signals.beat_init, signals.worker_process_init):
    _signal.connect(_configure_logging, weak=False)
