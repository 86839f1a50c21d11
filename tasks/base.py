"""What every athena-sync task shares: its process's runtime and the ``SyncTask`` base.

Each pool process builds one Runtime (``worker.runtime``) on its first task and closes it at
shutdown; importing this module connects nothing. A task that fails for good (crash, time limit,
its process dying on every delivery: ``worker.deliveries``) leaves a ``task_failed`` dead letter
with its arguments.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from celery import Task, signals
from celery.exceptions import Retry

from tasks.letters import task_failure
from worker.app import visibility_timeout
from worker.deliveries import Deliveries
from worker.runtime import Runtime, open_runtime
from worker.settings import load_settings
from worker.store.letters import add_request_letter
from worker.store.runs import utcnow

log = structlog.get_logger()


@dataclass
class ProcessState:
    """What one worker process keeps between tasks: its runtime and delivery counts."""

    runtime: Runtime
    deliveries: Deliveries

    @property
    def leases(self) -> Any:
        """The runtime's unit leases (a worker always has Redis)."""
        return self.runtime.leases


_state: ProcessState | None = None
_state_lock = threading.Lock()


def process_state() -> ProcessState:
    """This process's runtime and delivery counts, built on first use."""
    global _state
    with _state_lock:
        if _state is None:
            settings = load_settings()
            runtime = open_runtime(settings, require_redis=True)
            # A count must outlive the gap between two deliveries (at most a visibility timeout).
            deliveries = Deliveries(
                runtime.redis,
                prefix=settings.redis_key_prefix,
                ttl=2 * visibility_timeout(settings),
            )
            _state = ProcessState(runtime, deliveries)
        return _state


def _forget_inherited_state(**_: Any) -> None:
    # A forked pool process must not share the parent's sockets; it builds its own.
    global _state
    _state = None


def close_process_state(**_: Any) -> None:
    """Close the runtime of this process (worker shutdown)."""
    global _state
    with _state_lock:
        if _state is not None:
            _state.runtime.close()
            _state = None


signals.worker_process_init.connect(_forget_inherited_state, weak=False)
signals.worker_process_shutdown.connect(close_process_state, weak=False)
signals.worker_shutdown.connect(close_process_state, weak=False)


def retry_countdown(
    retries: int,
    *,
    retry_after: float | None,
    cap: float,
    base: float = 10.0,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with equal jitter, never shorter than the API's hint, capped."""
    ceiling = min(cap, base * 2**retries)
    backoff = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
    return float(min(cap, max(backoff, retry_after or 0.0)))


def record_task_failure(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    exc: BaseException,
    *,
    practice: bool = False,
) -> None:
    """Keep a task that failed for good as a ``task_failed`` letter with its arguments."""
    failure = task_failure(name, args, kwargs, exc, practice=practice)
    with process_state().runtime.sessions.begin() as session:
        add_request_letter(session, failure, run_id=None, now=utcnow())


class SyncTask(Task):  # type: ignore[misc]
    """Base of the sync tasks: a task that fails for good is dead-lettered with its arguments,
    and one whose process died on each of its ``TASK_MAX_RETRIES`` deliveries is not run again."""

    practice_fan_out = False
    """A practice's fan-out: its arguments are a practice's request (kept on its letter)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.id is None or request.is_eager:  # called in-process: not a delivery
            return super().__call__(*args, **kwargs)
        state = process_state()
        limit = state.runtime.settings.task_max_retries
        with state.deliveries.counted(request.id, max_deliveries=limit):
            return super().__call__(*args, **kwargs)

    def deliver_later(self, countdown: float) -> Retry:
        """Send this very task (same id, arguments and retry count) again after ``countdown``
        seconds; raise what this returns. Unlike ``self.retry()`` this spends none of the
        task's ``TASK_MAX_RETRIES`` retries, which are for the API's errors."""
        request = self.request
        again = self.signature_from_request(request, countdown=countdown, retries=request.retries)
        again.apply_async()
        return Retry(when=countdown, sig=again)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        log.error("task.failed", task=self.name, task_id=task_id, error=type(exc).__name__)
        try:
            record_task_failure(
                self.name, args or (), kwargs or {}, exc, practice=self.practice_fan_out
            )
        except Exception:
            log.exception("task.dead_letter_failed", task=self.name, task_id=task_id)
