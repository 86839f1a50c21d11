"""Running one unit of sync work to its end and recording it in ``sync_runs``.

An API failure ends the unit as ``failed`` with a request dead letter that holds the unit, so a
replay can run it again; the other units are never affected.
"""

from __future__ import annotations

import redis
import sqlalchemy as sa
import structlog

from worker import metrics
from worker.athena.errors import AthenaError, AuthError, RetriableError
from worker.leases import LeaseLost
from worker.logging import safe_summary
from worker.store.letters import RequestFailure, add_request_letter, resolve_unit_letters
from worker.store.runs import RunResult, finish_run, record_skipped, start_run
from worker.sync.job import (
    Job,
    ProgressHook,
    SourceUnavailable,
    SyncContext,
    has_open_record_letters,
)
from worker.sync.read import reader_for
from worker.units import Unit

log = structlog.get_logger()
# Celery's time-limit exceptions (matched by name: the engine does not depend on Celery).
TIME_LIMITS = ("SoftTimeLimitExceeded", "TimeLimitExceeded")
TRANSIENT = (
    sa.exc.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)

# Re-exported: callers build a SyncContext and hand it to run_unit.
__all__ = [
    "ProgressHook",
    "SyncContext",
    "is_practice_fatal",
    "run_unit",
    "skip_unit",
]


@metrics.timed_unit
def run_unit(ctx: SyncContext, unit: Unit) -> RunResult:
    """Run one unit to completion and record it in ``sync_runs``; never raises API errors."""
    with ctx.sessions.begin() as session:
        run_id = start_run(
            session, unit, run_group=ctx.run_group, task_id=ctx.task_id, now=ctx.clock()
        )
    job = Job(ctx, unit, run_id, calls_base=ctx.client.stats.requests)
    structlog.contextvars.bind_contextvars(
        run_id=run_id, resource=unit.resource, practice_id=unit.practice_id
    )
    log.info("sync.unit_started", unit=unit.key)
    try:
        job.resolve_letters = has_open_record_letters(ctx, unit)
        reader_for(unit)(job)
    except AthenaError as exc:
        job.count_calls()
        return _fail(job, exc)
    except (LeaseLost, SourceUnavailable) as exc:
        job.count_calls()
        with ctx.sessions.begin() as session:
            finish_run(
                session, run_id, job.counts, status="skipped", now=ctx.clock(), error=str(exc)
            )
        return RunResult(unit, run_id, "skipped", job.counts, error=str(exc))
    except Exception as exc:
        job.count_calls()
        if type(exc).__name__ in TIME_LIMITS:
            # The worker wants this task stopped: record it, then let the task end.
            with ctx.sessions.begin() as session:
                finish_run(
                    session,
                    run_id,
                    job.counts,
                    status="failed",
                    now=ctx.clock(),
                    error=safe_summary(exc),
                )
            raise
        return _crash(job, exc)
    finally:
        structlog.contextvars.unbind_contextvars("run_id", "resource", "practice_id")
    job.count_calls()
    status = "partial" if job.counts.dead_lettered else "succeeded"
    with ctx.sessions.begin() as session:
        finish_run(session, run_id, job.counts, status=status, now=ctx.clock())
        resolve_unit_letters(session, unit, run_id=run_id, now=ctx.clock())
    note = {"note": job.note} if job.note else {}
    log.info("sync.unit_finished", unit=unit.key, status=status, **job.counts.as_dict(), **note)
    return RunResult(unit, run_id, status, job.counts, note=job.note)


def _crash(job: Job, exc: Exception) -> RunResult:
    """An unexpected error ends this unit only: kept as an ``internal_error`` letter holding the
    unit (replayable once fixed); its summary names the error type and where, never the
    message (a database error quotes the data it refused)."""
    unit, ctx = job.unit, job.ctx
    summary = safe_summary(exc)
    transient = isinstance(exc, TRANSIENT)  # the database or Redis going away for a moment
    error_class = "retriable" if transient else "internal_error"
    log.error("sync.unit_crashed", unit=unit.key, error=summary, transient=transient)
    failure = RequestFailure(
        resource=unit.resource,
        practice_id=unit.practice_id,
        department_id=unit.department_id,
        path=None,
        params=job.params,
        error=None,
        error_class=error_class,
        message=summary,
        task_name=ctx.task_name,
        task_args=unit.to_json(),
        identity=unit.identity(),
    )
    with ctx.sessions.begin() as session:
        add_request_letter(session, failure, run_id=job.run_id, now=ctx.clock())
        job.counts.dead_lettered += 1
        finish_run(session, job.run_id, job.counts, status="failed", now=ctx.clock(), error=summary)
    return RunResult(
        unit,
        job.run_id,
        "failed",
        job.counts,
        error=summary,
        error_class=error_class,
        retriable=transient,
    )


def _fail(job: Job, exc: AthenaError) -> RunResult:
    """Dead-letter the failed request with its unit (so replay can re-run it); fail the run."""
    unit, ctx = job.unit, job.ctx
    error_class = "retries_exhausted" if isinstance(exc, RetriableError) else exc.error_class
    failure = RequestFailure(
        resource=unit.resource,
        practice_id=unit.practice_id,
        department_id=unit.department_id,
        path=exc.path,
        params=job.params,
        error=exc,
        error_class=error_class,
        message=str(exc),
        task_name=ctx.task_name,
        task_args=unit.to_json(),
        identity=unit.identity(),
    )
    with ctx.sessions.begin() as session:
        add_request_letter(session, failure, run_id=job.run_id, now=ctx.clock())
        job.counts.dead_lettered += 1
        finish_run(
            session,
            job.run_id,
            job.counts,
            status="failed",
            now=ctx.clock(),
            error=str(exc)[:2000],
        )
    log.warning("sync.unit_failed", unit=unit.key, error_class=error_class, status=exc.status)
    return RunResult(
        unit,
        job.run_id,
        "failed",
        job.counts,
        error=str(exc),
        error_class=error_class,
        retriable=isinstance(exc, RetriableError),
        retry_after=exc.retry_after,
        http_status=exc.status,
        refusal=refusal_of(exc),
    )


def refusal_of(exc: AthenaError) -> str | None:
    """Who refused: the token endpoint refusing the credentials (it answers for no practice),
    the practice (a 401 from the API; 404 "Invalid practice."), or one endpoint (a 403:
    athenahealth enables endpoints per key and practice)."""
    if isinstance(exc, AuthError):
        if exc.practice_id is None:
            return "credentials"
        return "endpoint" if exc.status == 403 else "practice"
    return "practice" if "Invalid practice" in (exc.api_error or str(exc)) else None


def is_practice_fatal(result: RunResult) -> bool:
    """True when the failure means the whole practice is unreachable: the credentials, or the
    practice refused (see :func:`refusal_of`); a refused endpoint fails only its own units."""
    return result.status == "failed" and result.refusal in ("credentials", "practice")


@metrics.timed_unit
def skip_unit(ctx: SyncContext, unit: Unit, reason: str) -> RunResult:
    """Record a unit that did not run (lease held, practice refused), with the reason."""
    with ctx.sessions.begin() as session:
        run_id = record_skipped(
            session,
            unit,
            run_group=ctx.run_group,
            task_id=ctx.task_id,
            reason=reason[:2000],
            now=ctx.clock(),
        )
    log.info("sync.unit_skipped", unit=unit.key, reason=reason)
    return RunResult(unit, run_id, "skipped", error=reason)
