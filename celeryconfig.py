"""Celery configuration for athena-sync, read from the one Settings object (``worker.settings``).

``worker.app`` loads this module lazily (``app.config_from_object("celeryconfig")``), the first
time Celery needs its configuration: when a worker or beat starts or a task is sent. A missing
``REDIS_URL`` raises SettingsError then, never when ``worker.app`` is imported.
"""

from __future__ import annotations

import worker.app as athena
from worker.observability import heartbeat
from worker.settings import load_settings

_settings = load_settings()

broker_url = athena.require_redis_url(_settings)
result_backend = broker_url
broker_transport_options = athena.broker_options(_settings)
result_backend_transport_options = {"global_keyprefix": athena.key_prefix(_settings)}
broker_connection_retry_on_startup = True

# The doors: the unit, fan-out, schedule and replay tasks, and one module per resource.
imports = (
    "tasks.sync_tasks",
    "tasks.departments",
    "tasks.providers",
    "tasks.appointment_types",
    "tasks.appointments",
)
task_default_queue = athena.QUEUE

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once: a message is acknowledged after its task ran, and put back when the process
# running it dies; leases make the second delivery of a running unit a recorded skip.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
worker_cancel_long_running_tasks_on_connection_loss = True

task_soft_time_limit = _settings.task_soft_time_limit_seconds
task_time_limit = _settings.task_time_limit_seconds
task_track_started = True
result_expires = athena.RESULT_EXPIRES_SECONDS
result_extended = True

worker_hijack_root_logger = False
# beat wakes at least this often (and stamps its heartbeat then: `athena-sync health beat`).
beat_max_loop_interval = heartbeat.BEAT_LOOP_SECONDS
timezone = "UTC"
enable_utc = True
beat_schedule = athena.beat_schedule(_settings)
