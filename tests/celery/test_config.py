"""The Celery configuration comes from Settings; commands equal the Procfile; retry backoff."""

from __future__ import annotations

import importlib
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from celery.schedules import crontab

from tasks.sync_tasks import retry_countdown
from worker.cli.celery_cmds import beat_argv, worker_argv

REPO = Path(__file__).resolve().parents[2]
ENV = {
    "REDIS_URL": "redis://127.0.0.1:6379/3",
    "REDIS_KEY_PREFIX": "acme",
    "TASK_TIME_LIMIT": "900",
    "TASK_SOFT_TIME_LIMIT": "840",
    "ATHENA_RETRY_AFTER_CAP_SECONDS": "60",
    "SCHEDULE_REFERENCE_MINUTES": "240",
    "SCHEDULE_APPOINTMENTS_MINUTES": "10",
    "SCHEDULE_RECONCILE_CRON": "15 2 * * 1-5",
    "SCHEDULE_REPLAY_MINUTES": "45",
    "SCHEDULE_CHANGES_MINUTES": "3",
}


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """``celeryconfig`` imported under ENV (and no .env file); forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("celeryconfig", None)
    yield importlib.import_module("celeryconfig")
    sys.modules.pop("celeryconfig", None)


def test_broker_results_and_delivery_guarantees_come_from_settings(config: Any) -> None:
    assert config.broker_url == config.result_backend == "redis://127.0.0.1:6379/3"
    options = config.broker_transport_options
    assert options["global_keyprefix"] == "acme:celery:"
    assert config.result_backend_transport_options == {"global_keyprefix": "acme:celery:"}
    assert options["visibility_timeout"] > 900 + 60  # longest task + longest retry countdown
    assert (config.task_acks_late, config.task_reject_on_worker_lost) == (True, True)
    assert config.worker_prefetch_multiplier == 1
    assert (config.task_soft_time_limit, config.task_time_limit) == (840, 900)
    assert config.accept_content == config.result_accept_content == ["json"]
    assert config.task_serializer == config.result_serializer == "json"
    assert config.task_track_started and config.broker_connection_retry_on_startup
    assert config.result_expires > 0 and config.worker_hijack_root_logger is False
    assert "tasks.sync_tasks" in config.imports and "tasks.providers" in config.imports


def test_beat_schedule_comes_from_settings(config: Any) -> None:
    schedule = config.beat_schedule
    assert schedule["reference-data"]["task"] == "tasks.sync_tasks.sync_reference"
    assert schedule["reference-data"]["schedule"] == timedelta(minutes=240)
    incremental = schedule["appointments-incremental"]
    assert incremental["schedule"] == timedelta(minutes=10)
    assert incremental["kwargs"] == {"mode": "incremental"}
    reconcile = schedule["appointments-reconcile"]
    assert reconcile["kwargs"] == {"mode": "reconcile"}
    assert reconcile["schedule"] == crontab(minute="15", hour="2", day_of_week="1-5")
    replay = schedule["dead-letter-replay"]
    assert replay["task"] == "tasks.sync_tasks.replay_dead_letters"
    assert replay["schedule"] == timedelta(minutes=45)
    changes = schedule["appointments-changes"]
    assert changes["task"] == "tasks.sync_tasks.sync_changes"
    assert changes["schedule"] == timedelta(minutes=3)
    assert changes["options"] == {"expires": 180}  # a tick nobody took is dropped, not piled up


def test_the_feed_has_no_beat_entry_when_appointments_are_polled() -> None:
    from worker.app import beat_schedule
    from worker.settings import settings_from_env

    polled = beat_schedule(settings_from_env({"SYNC_APPOINTMENTS_SOURCE": "booked"}))
    assert "appointments-changes" not in polled and "appointments-incremental" in polled
    default = beat_schedule(settings_from_env({}))
    assert default["appointments-changes"]["schedule"] == timedelta(minutes=1)


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}
    return subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)


def test_no_redis_url_fails_at_start_not_at_import(tmp_path: Path) -> None:
    imported = _run([sys.executable, "-c", "import worker.app, tasks.sync_tasks"], tmp_path)
    assert imported.returncode == 0, imported.stderr
    worker = _run([sys.executable, "-m", "celery", "-A", "worker.app", "worker"], tmp_path)
    assert worker.returncode != 0
    assert "REDIS_URL: is required" in worker.stderr
    command = "from worker.cli.celery_cmds import beat; beat()"
    beat = _run([sys.executable, "-c", command], tmp_path)
    assert beat.returncode != 0 and "REDIS_URL: is required" in beat.stderr


def test_enqueue_without_redis_url_is_a_configuration_error(tmp_path: Path) -> None:
    env_cli = [str(Path(sys.executable).parent / "athena-sync"), "sync", "providers"]
    done = _run([*env_cli, "--practice", "195900", "--enqueue"], tmp_path)
    assert done.returncode == 2
    assert "configuration error: REDIS_URL: is required" in done.stderr


def test_worker_and_beat_commands_are_the_procfile_lines() -> None:
    procfile = dict(
        line.split(": ", 1) for line in (REPO / "Procfile").read_text().splitlines() if line
    )
    assert " ".join(worker_argv()) == procfile["worker"]
    assert " ".join(beat_argv()) == procfile["beat"]
    assert worker_argv(2, ["-Q", "x"])[-3:] == ["--concurrency=2", "-Q", "x"]


def test_retry_countdown_backs_off_with_jitter_and_honours_the_hint() -> None:
    rng = random.Random(7)
    first = [retry_countdown(0, retry_after=None, cap=120, rng=rng) for _ in range(50)]
    assert all(5 <= c <= 10 for c in first) and len(set(first)) > 1
    assert all(40 <= retry_countdown(3, retry_after=None, cap=120, rng=rng) <= 80 for _ in range(9))
    assert retry_countdown(10, retry_after=None, cap=120, rng=rng) <= 120
    assert retry_countdown(0, retry_after=30, cap=120, rng=rng) == 30
    assert retry_countdown(0, retry_after=500, cap=120, rng=rng) == 120
