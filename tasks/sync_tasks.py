"""Celery tasks: thin doors onto ``worker.sync`` (the same functions the CLI calls).

``run_unit`` runs one unit of work under its lease; ``sync_practice`` plans a practice's units and
sends one ``run_unit`` each, so every worker shares the work; ``sync_reference`` and
``sync_appointments`` (beat) send one ``sync_practice`` per configured practice;
``replay_dead_letters`` (beat) replays retriable letters and purges old letters, runs and fences.

Every task takes JSON-safe arguments. A task that fails for good (crash, time limit, its process
dying on every delivery: ``worker.deliveries``) leaves a ``task_failed`` dead letter with its
arguments (:class:`SyncTask`). Each pool process builds one Runtime on its first task and closes
it at shutdown; importing this module connects nothing.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import structlog
from celery import Task, signals
from redis import Redis

from worker.app import TASKS, require_redis_url, task, visibility_timeout
from worker.app import retry_cap_seconds as cap_of
from worker.deliveries import Deliveries
from worker.leases import Leases
from worker.runtime import Runtime, open_runtime
from worker.settings import load_settings
from worker.sync import runner
from worker.sync.deadletters import RETRIABLE_CLASSES, add_request_letter
from worker.sync.leased import leased_runner, run_leased
from worker.sync.orchestrate import (
    SyncRequest,
    live_department_ids,
    practice_units,
    unplanned_appointments,
)
from worker.sync.replay import replay_letters
from worker.sync.retention import purge_expired
from worker.sync.runs import RunResult, fail_orphaned_runs, utcnow
from worker.sync.task_letters import task_failure
from worker.sync.units import LISTING_RESOURCES, Unit

log = structlog.get_logger()
REPLAY_LEASE = "dead-letter-replay"


@dataclass
class ProcessState:
    """What one worker process keeps between tasks: the runtime, leases, delivery counts."""

    runtime: Runtime
    leases: Leases
    deliveries: Deliveries


_state: ProcessState | None = None
_state_lock = threading.Lock()


def process_state() -> ProcessState:
    """This process's runtime and leases, built on first use."""
    global _state
    with _state_lock:
        if _state is None:
            settings = load_settings()
            redis = Redis.from_url(require_redis_url(settings))
            leases = Leases(redis, prefix=settings.redis_key_prefix, ttl=settings.lease_seconds)
            # A count must outlive the gap between two deliveries (at most a visibility timeout).
            deliveries = Deliveries(
                redis, prefix=settings.redis_key_prefix, ttl=2 * visibility_timeout(settings)
            )
            _state = ProcessState(open_runtime(settings, redis=redis), leases, deliveries)
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
            _state.leases.redis.close()
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
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], exc: BaseException
) -> None:
    """Keep a task that failed for good as a ``task_failed`` letter with its arguments."""
    failure = task_failure(name, args, kwargs, exc)
    with process_state().runtime.sessions.begin() as session:
        add_request_letter(session, failure, run_id=None, now=utcnow())


class SyncTask(Task):  # type: ignore[misc]
    """Base of the sync tasks: a task that fails for good is dead-lettered with its arguments,
    and one whose process died on ``TASK_MAX_RETRIES`` redeliveries is not run again."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.id is None or request.is_eager:  # called in-process: not a delivery
            return super().__call__(*args, **kwargs)
        state = process_state()
        limit = state.runtime.settings.task_max_retries
        with state.deliveries.counted(request.id, max_deaths=limit):
            return super().__call__(*args, **kwargs)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        log.error("task.failed", task=self.name, task_id=task_id, error=type(exc).__name__)
        try:
            record_task_failure(self.name, args or (), kwargs or {}, exc)
        except Exception:
            log.exception("task.dead_letter_failed", task=self.name, task_id=task_id)


@task(bind=True, base=SyncTask, name=f"{TASKS}.run_unit", max_retries=None)
def run_unit(self: Any, unit: dict[str, Any], run_group: str | None = None) -> dict[str, Any]:
    """Run one unit of work under its lease; a retriable failure becomes a Celery retry."""
    state = process_state()
    ctx = state.runtime.context(run_group=run_group, task_id=self.request.id)
    parsed = Unit.from_json(unit)
    holder = state.leases.holder(parsed.key)
    if holder is not None and holder.owner == self.request.id:
        # This very task was running in a pool process that died (its message came back at
        # once): wait out the dead holder's lease instead of skipping our own work.
        countdown = holder.ttl_ms / 1000 + random.uniform(1, 5)
        log.info("task.redelivered_waiting", unit=parsed.key, countdown=round(countdown, 1))
        raise self.retry(countdown=countdown, max_retries=None)
    result = run_leased(ctx, state.leases, parsed)
    settings = ctx.settings
    if result.retriable and self.request.retries < settings.task_max_retries:
        countdown = retry_countdown(
            self.request.retries, retry_after=result.retry_after, cap=cap_of(settings),
            base=settings.task_retry_base_seconds,
        )  # fmt: skip
        log.info("task.retrying", unit=result.unit.key, countdown=round(countdown, 1))
        raise self.retry(countdown=countdown)
    return result.as_json()


@dataclass
class Plan:
    """What a practice fan-out did: units run here, unit tasks sent, or still waiting."""

    practice_id: str
    run_group: str
    ran: list[RunResult] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    waiting: bool = False

    def as_json(self) -> dict[str, Any]:
        """JSON-safe result of ``sync_practice``."""
        return {
            "practice_id": self.practice_id,
            "run_group": self.run_group,
            "ran": [r.as_json() for r in self.ran],
            "sent": self.sent,
        }


def fan_out(
    ctx: runner.SyncContext,
    leases: Leases,
    request: SyncRequest,
    practice_id: str,
    send: Callable[[Unit], str],
) -> Plan:
    """Run departments here first (later units need their zones), send every other unit."""
    plan = Plan(practice_id, ctx.run_group)
    for unit in practice_units(ctx, request, practice_id):
        if unit.resource != "departments":
            plan.sent.append({"unit": unit.to_json(), "task_id": send(unit)})
            continue
        result = run_leased(ctx, leases, unit)
        plan.ran.append(result)
        if result.status == "skipped" and not live_department_ids(ctx, practice_id):
            plan.waiting = True  # another task is syncing them; plan again once it is done
            return plan
        if runner.is_practice_fatal(result):
            return plan
    return plan


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


@task(bind=True, base=SyncTask, name=f"{TASKS}.sync_practice", max_retries=None)
def sync_practice(
    self: Any,
    practice_id: str,
    resources: list[str],
    mode: str = "incremental",
    start: str | None = None,
    end: str | None = None,
    run_group: str | None = None,
) -> dict[str, Any]:
    """Plan one practice's units of work and send one ``run_unit`` task per unit."""
    state = process_state()
    ctx = state.runtime.context(run_group=run_group or self.request.id, task_id=self.request.id)
    request = SyncRequest(tuple(resources), (practice_id,), mode, _day(start), _day(end))

    def send(unit: Unit) -> str:
        sent = run_unit.apply_async(args=[unit.to_json()], kwargs={"run_group": ctx.run_group})
        return str(sent.id)

    plan = fan_out(ctx, state.leases, request, practice_id, send)
    settings = ctx.settings
    if plan.waiting and self.request.retries < settings.task_max_retries:
        wait = retry_countdown(
            self.request.retries, retry_after=None, cap=cap_of(settings),
            base=settings.task_retry_base_seconds,
        )  # fmt: skip
        raise self.retry(countdown=wait)
    if plan.waiting:
        raise RuntimeError(f"departments of practice {practice_id} never became available")
    sent = [Unit.from_json(s["unit"]) for s in plan.sent]
    plan.ran.extend(unplanned_appointments(ctx, request, practice_id, plan.ran, sent))
    log.info("sync.fanned_out", practice_id=practice_id, sent=len(plan.sent), ran=len(plan.ran))
    return plan.as_json()


def send_practices(
    resources: Sequence[str], mode: str = "incremental", practice_id: str | None = None
) -> list[str]:
    """One ``sync_practice`` task per practice (default: every configured one); their ids."""
    settings = process_state().runtime.settings
    practices = (practice_id,) if practice_id else settings.require_practices()
    return [
        str(sync_practice.delay(practice_id=p, resources=list(resources), mode=mode).id)
        for p in practices
    ]


@task(base=SyncTask, name=f"{TASKS}.sync_reference")
def sync_reference() -> list[str]:
    """Reference data (departments first, providers, appointment types) for every practice."""
    return send_practices(LISTING_RESOURCES, "incremental")


@task(base=SyncTask, name=f"{TASKS}.sync_appointments")
def sync_appointments(mode: str = "incremental") -> list[str]:
    """Appointments (``incremental`` or ``reconcile`` over the settings' window), all practices."""
    return send_practices(("appointments",), mode)


@task(bind=True, base=SyncTask, name=f"{TASKS}.replay_dead_letters")
def replay_dead_letters(self: Any) -> dict[str, Any]:
    """Replay open letters of retriable classes, then purge what is past retention."""
    state = process_state()
    ctx = state.runtime.context(task_id=self.request.id)
    settings = ctx.settings
    with state.leases.hold(REPLAY_LEASE, owner=self.request.id) as held:
        if held is None:
            log.info("deadletter.replay_skipped", reason="another replay is running")
            return {"skipped": True}
        outcomes = replay_letters(
            ctx, all_open=True, classes=RETRIABLE_CLASSES,
            max_attempts=settings.dead_letter_max_attempts, replayable_only=True,
            run=leased_runner(state.leases),
        )  # fmt: skip
        with ctx.sessions.begin() as session:
            purged = purge_expired(session, settings=settings, now=ctx.clock())
            # No unit runs past the hard time limit: a row still running after twice that
            # belongs to a worker that was killed.
            orphaned = fail_orphaned_runs(
                session, older_than=timedelta(seconds=2 * settings.task_time_limit_seconds),
                now=ctx.clock(),
            )  # fmt: skip
    resolved = sum(1 for o in outcomes if o.result == "resolved")
    return {
        "skipped": False, "replayed": len(outcomes), "resolved": resolved,
        "purged": purged.letters, "purged_runs": purged.runs, "purged_fences": purged.fences,
        "orphaned_runs": orphaned,
    }  # fmt: skip
