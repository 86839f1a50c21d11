"""The Celery app ``app``, configured from ``celeryconfig.py`` (the same Settings as the rest).

Nothing here connects or reads settings at import: Celery loads ``celeryconfig`` the first time
the configuration is needed (worker or beat start, sending a task), and that is when a missing
``REDIS_URL`` raises :class:`~worker.settings.SettingsError`. The tasks live in ``tasks/`` (the
doors, above everything); nothing in ``worker/`` imports them, and task names appear as strings
only in the beat schedule below.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import celery.apps.worker as celery_worker
from celery import Celery, signals
from celery.apps.beat import Beat
from celery.schedules import crontab
from celery.utils.log import LoggingProxy
from redis import Redis

from worker.logging import configure_logging
from worker.observability import heartbeat
from worker.observability.process import WorkerMetrics, start_worker_metrics
from worker.settings import Settings, load_settings


def _json_logs() -> bool:
    return load_settings().log_format == "json"


def _say_json(msg: str, f: Any = sys.__stderr__) -> None:
    """Celery's shutdown notices (written straight to the file, even from a signal handler) as
    one JSON object each, like every other line (LOG_FORMAT=json)."""
    event = {
        "event": " ".join(str(msg).split()),
        "level": "warning",
        "logger": "celery.apps.worker",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    target: Any = f if hasattr(f, "fileno") else sys.__stderr__
    with contextlib.suppress(OSError):  # as Celery's: a lost notice must never stop the shutdown
        os.write(target.fileno(), (json.dumps(event) + "\n").encode())


class _Worker(celery_worker.Worker):  # type: ignore[misc]
    """``celery worker``; with JSON logs no banner (it is not JSON) and JSON shutdown notices."""

    def on_before_init(self, quiet: bool = False, **kwargs: Any) -> None:
        _configure_logging()  # before Celery's first warning (running as root, say)
        json_logs = _json_logs()
        if json_logs:
            celery_worker.safe_say = _say_json
        super().on_before_init(quiet=quiet or json_logs, **kwargs)


class _Beat(Beat):  # type: ignore[misc]
    """``celery beat``; with JSON logs no banner."""

    def __init__(self, *args: Any, quiet: bool = False, **kwargs: Any) -> None:
        _configure_logging()
        super().__init__(*args, quiet=quiet or _json_logs(), **kwargs)


class AthenaCelery(Celery):  # type: ignore[misc]
    """The Celery app, whose worker and beat write nothing but log lines in JSON mode."""

    @cached_property
    def Worker(self) -> Any:  # Celery's name
        return self.subclass_with_self(_Worker)

    @cached_property
    def Beat(self) -> Any:  # Celery's name
        return self.subclass_with_self(_Beat)


app = AthenaCelery("athena_sync")
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
    """Every line a worker or beat writes, Celery's included, through our handler on the real
    stderr (sys.stderr may be Celery's redirect by now), each with its own level."""
    settings = load_settings()
    configure_logging(settings, stream=sys.__stderr__, libraries_level=settings.log_level)


def _take_over_logging(**_: Any) -> None:
    """Celery's logging setup, done our way; stray prints to stdout/stderr then become
    ``celery.redirected`` log lines (warnings), as Celery would make them."""
    _configure_logging()
    if app.conf.worker_redirect_stdouts and not isinstance(sys.stdout, LoggingProxy):
        app.log.redirect_stdouts_to_logger(
            logging.getLogger("celery.redirected"),
            loglevel=app.conf.worker_redirect_stdouts_level,
        )


# A receiver of setup_logging tells Celery not to configure logging itself: ours does, in the
# main process of worker and beat (after their banners) and in every pool process.
signals.setup_logging.connect(_take_over_logging, weak=False)
for _signal in (signals.worker_init, signals.beat_init, signals.worker_process_init):
    _signal.connect(_configure_logging, weak=False)

_metrics: WorkerMetrics | None = None


def _start_metrics(**_: Any) -> None:
    # worker_init runs in the main process before the pool forks: the pool inherits the sink.
    global _metrics
    _metrics = start_worker_metrics(load_settings())


def _pool_process_exited(pid: int | None = None, **_: Any) -> None:
    if _metrics is not None and pid is not None:
        _metrics.mark_dead(pid)


def _stop_metrics(**_: Any) -> None:
    global _metrics
    if _metrics is not None:
        _metrics.close()
        _metrics = None


def _beat_heartbeat(sender: Any = None, **_: Any) -> None:
    """Stamp the heartbeat on each pass of the scheduler loop (``athena-sync health beat``)."""
    settings = load_settings()
    redis = Redis.from_url(settings.require_redis_url())
    scheduler = sender.scheduler
    scheduler.tick = heartbeat.stamping(
        scheduler.tick, lambda: heartbeat.beat(redis, settings.redis_key_prefix)
    )


signals.worker_init.connect(_start_metrics, weak=False)
signals.worker_process_shutdown.connect(_pool_process_exited, weak=False)
signals.worker_shutdown.connect(_stop_metrics, weak=False)
signals.beat_init.connect(_beat_heartbeat, weak=False)
