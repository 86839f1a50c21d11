"""The unit, practice fan-out, schedule and replay tasks: thin doors onto ``worker.sync``.

``run_unit`` runs one unit of work under its lease; ``sync_practice`` plans a practice's units
through the same fan-out the CLI uses and sends one ``run_unit`` each, so every worker shares the
work; ``sync_reference`` and ``sync_appointments`` (beat) send one ``sync_practice`` per
configured practice, ``sync_changes`` (beat) one reading the changed-data feeds;
``replay_dead_letters`` (beat) purges old letters, runs and fences, then replays retriable
letters by sending their units to the workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import date, timedelta
from functools import partial
from typing import Any

import structlog

from tasks.base import SyncTask, process_state, retry_countdown
from worker.app import task
from worker.resources import ReadStrategy, feed_resources, resource_names
from worker.store.letters import RETRIABLE_CLASSES
from worker.store.retention import purge_expired
from worker.store.runs import fail_orphaned_runs
from worker.sync.leased import run_leased
from worker.sync.plan import SyncRequest, fan_out, finish
from worker.sync.replay import replay_letters
from worker.units import Unit

log = structlog.get_logger()
REPLAY_LEASE = "dead-letter-replay"


@task(bind=True, base=SyncTask, max_retries=None)
def run_unit(self: Any, unit: dict[str, Any], run_group: str | None = None) -> dict[str, Any]:
    """Run one unit of work under its lease; a retriable failure becomes a Celery retry."""
    state = process_state()
    runtime = state.runtime
    ctx = runtime.context(run_group=run_group, task_id=self.request.id, task_name=self.name)
    parsed = Unit.from_json(unit)
    holder = state.leases.holder(parsed.key)
    if holder is not None and holder.owner == self.request.id:
        # This very task was running in a pool process that died (its message came back at
        # once): wait out the dead holder's lease instead of skipping our own work.
        countdown = holder.ttl_ms / 1000 + random.uniform(1, 5)
        log.info("task.redelivered_waiting", unit=parsed.key, countdown=round(countdown, 1))
        raise self.deliver_later(countdown)
    result = run_leased(ctx, state.leases, parsed)
    settings = ctx.settings
    if result.retriable and self.request.retries < settings.task_max_retries:
        countdown = retry_countdown(
            self.request.retries,
            retry_after=result.retry_after,
            cap=settings.retry_after_cap_seconds,
            base=settings.task_retry_base_seconds,
        )
        log.info("task.retrying", unit=result.unit.key, countdown=round(countdown, 1))
        raise self.retry(countdown=countdown)
    return result.as_json()


def send_unit(unit: Unit, *, run_group: str | None) -> str:
    """Hand one unit to a worker (``run_unit``); its task id."""
    return str(run_unit.apply_async(args=[unit.to_json()], kwargs={"run_group": run_group}).id)


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


@task(bind=True, base=SyncTask, max_retries=None, practice_fan_out=True)
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
    runtime = process_state().runtime
    ctx = runtime.context(
        run_group=run_group or self.request.id, task_id=self.request.id, task_name=self.name
    )
    request = SyncRequest(tuple(resources), (practice_id,), mode, _day(start), _day(end))

    send = partial(send_unit, run_group=ctx.run_group)
    plan = fan_out(ctx, request, practice_id, run=runtime.runner(), send=send, retry_later=True)
    settings = ctx.settings
    if plan.waiting and self.request.retries < settings.task_max_retries:
        wait = retry_countdown(
            self.request.retries,
            retry_after=None,
            cap=settings.retry_after_cap_seconds,
            base=settings.task_retry_base_seconds,
        )
        raise self.retry(countdown=wait)
    if plan.waiting:
        raise RuntimeError(f"departments of practice {practice_id} never became available")
    finish(ctx, request, plan)
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


@task(base=SyncTask)
def sync_reference() -> list[str]:
    """Reference data (departments first, providers, appointment types) for every practice."""
    return send_practices(resource_names(ReadStrategy.LISTING), "incremental")


@task(base=SyncTask)
def sync_appointments(mode: str = "incremental") -> list[str]:
    """Appointments (``incremental`` or ``reconcile`` over the settings' window), all practices."""
    return send_practices(("appointments",), mode)


@task(base=SyncTask)
def sync_changes() -> list[str]:
    """The changed-data feeds (appointments) of every configured practice on them (beat
    ``appointments-changes``); a practice whose subscription is not active is checked now and
    then and polled by ``sync_appointments`` meanwhile."""
    return send_practices(feed_resources(), "changed")


@task(bind=True, base=SyncTask)
def replay_dead_letters(self: Any) -> dict[str, Any]:
    """Purge what is past retention and fail orphaned runs, then replay open letters of
    retriable classes by sending their units to the workers (never running them here)."""
    state = process_state()
    ctx = state.runtime.context(task_id=self.request.id, task_name=self.name)
    settings = ctx.settings
    with state.leases.hold(REPLAY_LEASE, owner=self.request.id) as held:
        if held is None:
            log.info("deadletter.replay_skipped", reason="another replay is running")
            return {"skipped": True}
        # Housekeeping first: a replay that raises (or a process that dies in a practice's
        # departments) must not stop retention or orphan marking.
        with ctx.sessions.begin() as session:
            purged = purge_expired(session, settings=settings, now=ctx.clock())
            # No unit runs past the hard time limit: a row still running after twice that
            # belongs to a worker that was killed.
            orphaned = fail_orphaned_runs(
                session,
                older_than=timedelta(seconds=2 * settings.task_time_limit_seconds),
                now=ctx.clock(),
            )
        outcomes = replay_letters(
            ctx,
            all_open=True,
            classes=RETRIABLE_CLASSES,
            max_attempts=settings.dead_letter_max_attempts,
            replayable_only=True,
            run=state.runtime.runner(),
            send=partial(send_unit, run_group=ctx.run_group),
        )
    return {
        "skipped": False,
        "replayed": len(outcomes),
        "sent": sum(1 for o in outcomes if o.result == "sent"),
        "resolved": sum(1 for o in outcomes if o.result == "resolved"),
        "purged": purged.letters,
        "purged_runs": purged.runs,
        "purged_fences": purged.fences,
        "orphaned_runs": orphaned,
    }
