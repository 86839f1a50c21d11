"""Running one unit of sync work: page, map, upsert, dead-letter, mark deletions, finish.

Every page is one transaction holding its rows, its dead letters, the run's counters and (for the
final page of an incremental read) the new watermark, so a crash loses nothing and a re-run
repeats nothing that matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session, sessionmaker

from models import Appointment, DeadLetter, Department
from tasks import get_resource as resource_for
from worker.athena.client import AthenaClient, Page
from worker.athena.errors import AthenaError, AuthError, RetriableError
from worker.parse import to_eastern_param, zone_from_offset
from worker.settings import Settings
from worker.sync import state
from worker.sync.deadletters import (
    RequestFailure,
    add_record_letters,
    add_request_letter,
    resolve_record_letters,
)
from worker.sync.pages import MappedPage, map_records
from worker.sync.runs import Counts, RunResult, finish_run, save_progress, start_run, utcnow
from worker.sync.units import Unit, split_windows
from worker.sync.upsert import mark_missing, upsert_page

log = structlog.get_logger()

ProgressHook = Callable[[Unit, Counts], None]
RUN_UNIT_TASK = "athena_sync.run_unit"


@dataclass
class SyncContext:
    """What every unit of work needs: the API client, the database and the settings."""

    client: AthenaClient
    sessions: sessionmaker[Session]
    settings: Settings
    run_group: str
    task_id: str | None = None
    clock: Callable[[], datetime] = utcnow
    on_progress: ProgressHook | None = None


@dataclass
class Job:
    """One unit of work in progress: its run row, counters and the request it is on."""

    ctx: SyncContext
    unit: Unit
    run_id: int
    counts: Counts = field(default_factory=Counts)
    calls_base: int = 0
    resolve_letters: bool = False
    params: dict[str, Any] = field(default_factory=dict)

    def count_calls(self) -> None:
        """API calls this unit made so far (retries included)."""
        self.counts.api_calls = self.ctx.client.stats.requests - self.calls_base


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
        job.resolve_letters = _has_open_record_letters(ctx, unit)
        if unit.resource == "appointments":
            _sync_appointments(job)
        else:
            _sync_listing(job)
    except AthenaError as exc:
        job.count_calls()
        return _fail(job, exc)
    except Exception as exc:
        job.count_calls()
        with ctx.sessions.begin() as session:
            finish_run(
                session, run_id, job.counts, status="failed", now=ctx.clock(),
                error=f"internal error: {type(exc).__name__}: {exc}"[:2000],
            )  # fmt: skip
        log.exception("sync.unit_crashed", unit=unit.key)
        raise
    finally:
        structlog.contextvars.unbind_contextvars("run_id", "resource", "practice_id")
    job.count_calls()
    status = "partial" if job.counts.dead_lettered else "succeeded"
    with ctx.sessions.begin() as session:
        finish_run(session, run_id, job.counts, status=status, now=ctx.clock())
    log.info("sync.unit_finished", unit=unit.key, status=status, **job.counts.as_dict())
    return RunResult(unit, run_id, status, job.counts)


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
        task_name=RUN_UNIT_TASK,
        task_args=unit.to_json(),
    )
    with ctx.sessions.begin() as session:
        add_request_letter(session, failure, run_id=job.run_id, now=ctx.clock())
        job.counts.dead_lettered += 1
        finish_run(
            session, job.run_id, job.counts, status="failed", now=ctx.clock(),
            error=str(exc)[:2000],
        )  # fmt: skip
    log.warning("sync.unit_failed", unit=unit.key, error_class=error_class, status=exc.status)
    return RunResult(
        unit, job.run_id, "failed", job.counts, error=str(exc), error_class=error_class,
        retriable=isinstance(exc, RetriableError), retry_after=exc.retry_after,
    )  # fmt: skip


def _has_open_record_letters(ctx: SyncContext, unit: Unit) -> bool:
    """Whether pages must resolve letters of records that now map cleanly (rarely true)."""
    with ctx.sessions() as session:
        found = session.scalar(
            sa.select(DeadLetter.id)
            .where(
                DeadLetter.kind == "record",
                DeadLetter.state == "open",
                DeadLetter.resource == unit.resource,
                DeadLetter.practice_id == unit.practice_id,
            )
            .limit(1)
        )
    return found is not None


def _pages(job: Job, params: dict[str, Any]) -> Iterator[Page]:
    resource = resource_for(job.unit.resource)
    job.params = params
    return job.ctx.client.paginate(
        job.unit.practice_id, resource.path, params, collection=resource.collection
    )


def _write_page(job: Job, session: Session, page: Page, mapped: MappedPage) -> None:
    """Rows, dead letters and counters of one page, in the caller's transaction."""
    unit, counts = job.unit, job.counts
    resource = resource_for(unit.resource)
    now = job.ctx.clock()
    result = upsert_page(
        session, resource.model, mapped.rows, run_id=job.run_id, now=now,
        guard_column=resource.guard_column,
    )  # fmt: skip
    counts.fetched += len(page.records)
    counts.inserted += result.inserted
    counts.updated += result.updated
    counts.unchanged += result.unchanged
    counts.dead_lettered += add_record_letters(
        session, mapped.bad, resource=unit.resource, practice_id=unit.practice_id,
        department_id=unit.department_id, path=page.path, run_id=job.run_id, now=now,
    )  # fmt: skip
    if job.resolve_letters:
        resolve_record_letters(
            session, resource=unit.resource, practice_id=unit.practice_id,
            record_ids=mapped.good_ids, now=now,
        )  # fmt: skip
    job.count_calls()
    save_progress(session, job.run_id, counts)
    log.debug(
        "sync.page_upserted", page=page.number, records=len(page.records),
        inserted=result.inserted, updated=result.updated, dead_lettered=len(mapped.bad),
    )  # fmt: skip
    if job.ctx.on_progress is not None:
        job.ctx.on_progress(unit, counts)


def _map(job: Job, records: list[Any], context: dict[str, Any]) -> MappedPage:
    resource = resource_for(job.unit.resource)
    return map_records(
        records, resource=resource, practice_id=job.unit.practice_id, context=context
    )


def _visible_departments(job: Job) -> set[str]:
    """The default listing omits portal-hidden departments: what it shows is not hidden."""
    resource = resource_for("departments")
    params = {k: v for k, v in resource.params.items() if k != "showalldepartments"}
    visible: set[str] = set()
    for page in _pages(job, params):
        visible |= {i for r in page.records if (i := resource.record_id(r))}
    return visible


def _listing_rows(job: Job, records: list[Any], visible: set[str] | None) -> MappedPage:
    if visible is None:
        return _map(job, records, {})
    resource = resource_for("departments")
    mapped = MappedPage()
    for record in records:
        ident = resource.record_id(record)
        hidden = None if ident is None else ident not in visible
        mapped.extend(_map(job, [record], {"hidden": hidden}))
    return mapped


def _read_then_mark(
    job: Job,
    params: dict[str, Any],
    mapper: Callable[[list[Any]], MappedPage],
    model: Any,
    scope: tuple[Any, ...],
) -> None:
    """Read every page, then mark deleted what the complete read did not see.

    The marking is only reached after the last page: a partial read (an error part-way) raises
    out of the loop and never marks anything.
    """
    seen: set[str] = set()
    for page in _pages(job, params):
        mapped = mapper(page.records)
        seen |= mapped.seen_ids
        with job.ctx.sessions.begin() as session:
            _write_page(job, session, page, mapped)
    with job.ctx.sessions.begin() as session:
        job.counts.deleted += mark_missing(
            session, model, practice_id=job.unit.practice_id, seen_ids=seen,
            scope_filter=scope, now=job.ctx.clock(), run_id=job.run_id,
        )  # fmt: skip
        save_progress(session, job.run_id, job.counts)


def _sync_listing(job: Job) -> None:
    """A complete listing; rows missing from it are marked deleted afterwards."""
    resource = resource_for(job.unit.resource)
    visible = _visible_departments(job) if job.unit.resource == "departments" else None
    _read_then_mark(
        job, dict(resource.params), lambda records: _listing_rows(job, records, visible),
        resource.model, (),
    )  # fmt: skip


def department_zones(session: Session, practice_id: str) -> dict[str, str]:
    """Department id -> IANA zone name, from the departments already synced.

    A department without ``timezonename`` falls back to the US zone its standard offset and DST
    flag name; one with neither is left out, so its appointments are dead-lettered, not guessed.
    """
    rows = session.execute(
        sa.select(
            Department.department_id,
            Department.timezone_name,
            Department.timezone_offset,
            Department.does_not_observe_dst,
        ).where(Department.practice_id == practice_id)
    )
    zones = {
        str(dept): name or zone_from_offset(offset, None if no_dst is None else not no_dst)
        for dept, name, offset, no_dst in rows
    }
    return {dept: zone for dept, zone in zones.items() if zone}


def _appointment_params(unit: Unit, start: date, end: date) -> dict[str, Any]:
    return {
        **resource_for("appointments").params,
        "departmentid": unit.department_id,
        "startdate": start.strftime("%m/%d/%Y"),
        "enddate": end.strftime("%m/%d/%Y"),
    }


def _sync_appointments(job: Job) -> None:
    unit = job.unit
    if unit.window_start is None or unit.window_end is None or unit.department_id is None:
        raise ValueError(f"an appointments unit needs a department and a window: {unit.key}")
    with job.ctx.sessions() as session:
        context = {"timezones": department_zones(session, unit.practice_id)}
    if unit.mode == "reconcile":
        _reconcile_window(job, unit.window_start, unit.window_end, context)
    else:
        _incremental(job, unit.window_start, unit.window_end, context)


def _reconcile_window(job: Job, start: date, end: date, context: dict[str, Any]) -> None:
    """Read one whole window, then mark what vanished from it (only after a complete read)."""
    scope = (
        Appointment.department_id == job.unit.department_id,
        Appointment.local_date >= start,
        Appointment.local_date <= end,
    )
    _read_then_mark(
        job, _appointment_params(job.unit, start, end),
        lambda records: _map(job, records, context), Appointment, scope,
    )  # fmt: skip


def _incremental(job: Job, start: date, end: date, context: dict[str, Any]) -> None:
    """Read what changed since the department's watermark, window by window.

    The new watermark (the newest ``lastmodified`` read) is committed with the final page, so a
    crash part-way leaves the old one and the next run reads the same changes again.
    """
    ctx, unit = job.ctx, job.unit
    scope = str(unit.department_id)
    with ctx.sessions() as session:
        watermark = state.get_watermark(session, unit.practice_id, "appointments", scope)
    overlap = timedelta(seconds=ctx.settings.sync_lastmodified_overlap_seconds)
    newest = watermark
    windows = list(split_windows(start, end, ctx.settings.sync_window_days))
    for index, (w_start, w_end) in enumerate(windows):
        params = _appointment_params(unit, w_start, w_end)
        if watermark is not None:
            params["startlastmodified"] = to_eastern_param(watermark - overlap)
        for page in _pages(job, params):
            mapped = _map(job, page.records, context)
            newest = _newest(newest, mapped.rows)
            with ctx.sessions.begin() as session:
                _write_page(job, session, page, mapped)
                if page.last and index == len(windows) - 1:
                    state.set_watermark(
                        session, unit.practice_id, "appointments", scope, newest,
                        run_id=job.run_id, now=ctx.clock(),
                    )  # fmt: skip


def _newest(current: datetime | None, rows: list[dict[str, Any]]) -> datetime | None:
    stamps = [r["last_modified_at"] for r in rows if r.get("last_modified_at") is not None]
    if not stamps:
        return current
    best = max(stamps)
    return best if current is None or best > current else current


def is_practice_fatal(result: RunResult) -> bool:
    """True when the failure means the whole practice is unreachable (auth, unknown practice)."""
    if result.status != "failed" or result.error_class is None:
        return False
    return result.error_class == AuthError.error_class or "Invalid practice" in (result.error or "")
