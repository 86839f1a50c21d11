"""Resources read by department (``ReadStrategy.BY_DEPARTMENT``; appointments): one unit per
department, in windows of at most a month, times mapped with the department's zone.

``incremental`` reads what changed since the department's watermark; the new watermark is
committed with the final page, and only by a run that covered the whole horizon. It is the newest
``lastmodified`` read but never later than the API's clock when the read began, so a change made
while the read went on is read again next time. ``reconcile`` reads whole windows and marks what
vanished from them, only after a complete read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import structlog

from worker.parse import to_eastern_param
from worker.resources import get_resource as resource_for
from worker.store import watermarks
from worker.store.departments import department_zones
from worker.sync.job import Job, map_page, pages_in_turn, write_page
from worker.sync.read.complete import read_then_mark
from worker.units import Unit, default_window, split_windows


def _window_params(unit: Unit, start: date, end: date) -> dict[str, Any]:
    return {
        **resource_for(unit.resource).params,
        "departmentid": unit.department_id,
        "startdate": start.strftime("%m/%d/%Y"),
        "enddate": end.strftime("%m/%d/%Y"),
    }


log = structlog.get_logger()


def read_by_department(job: Job) -> None:
    """One department's unit: ``reconcile`` one window, or ``incremental`` from the watermark."""
    unit = job.unit
    if unit.window_start is None or unit.window_end is None or unit.department_id is None:
        raise ValueError(f"a {unit.resource} unit needs a department and a window: {unit.key}")
    with job.ctx.sessions() as session:
        context = {"timezones": department_zones(session, unit.practice_id)}
    if unit.mode == "reconcile":
        _reconcile_window(job, unit.window_start, unit.window_end, context)
    else:
        _incremental(job, unit.window_start, unit.window_end, context)


def _reconcile_window(job: Job, start: date, end: date, context: dict[str, Any]) -> None:
    """Read one whole window, then mark what vanished from it (only after a complete read)."""
    model = resource_for(job.unit.resource).model
    scope = (
        model.department_id == job.unit.department_id,  # type: ignore[attr-defined]
        model.local_date >= start,  # type: ignore[attr-defined]
        model.local_date <= end,  # type: ignore[attr-defined]
    )
    read_then_mark(
        job,
        _window_params(job.unit, start, end),
        lambda records: map_page(job, records, context),
        model,
        scope,
    )


def _incremental(job: Job, start: date, end: date, context: dict[str, Any]) -> None:
    """Read what changed since the department's watermark, window by window.

    The new watermark is committed with the final page, so a crash part-way leaves the old one
    and the next run reads the same changes again. Windows are read one after another, so a
    change to a window already read can be older than one read later: the watermark is held to
    the API's clock when the first request was sent (its ``Date``; this machine's clock, taken
    just before, when there is none), and everything changed during the read is read again.
    A run narrower than the horizon reads with the watermark but leaves it where it was: it did
    not look at the other days, and the scheduled run must still see their changes.
    """
    ctx, unit = job.ctx, job.unit
    scope = str(unit.department_id)
    skew = timedelta(seconds=ctx.settings.sync_clock_skew_seconds)
    with ctx.sessions() as session:
        stored = watermarks.get_watermark(session, unit.practice_id, unit.resource, scope)
    local = ctx.clock()
    watermark = trusted(stored, local + skew, unit)
    advance = covers_horizon(job, start, end)
    listings = _listings(job, start, end, watermark)
    mapper = partial(map_page, job, context=context)
    newest, began = watermark, local
    for index, page, mapped in pages_in_turn(job, listings, mapper):
        assert mapped is not None
        if index == 0 and page.number == 1 and page.server_time is not None:
            # The API's clock, but never ahead of ours by more than the hosts' skew: a gateway
            # Date far ahead would otherwise set a watermark past changes not yet read.
            began = min(page.server_time, local + skew)
        newest = newest_change(newest, mapped.rows, resource_for(unit.resource).guard_column)
        with ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
            if advance and page.last and index == len(listings) - 1:
                watermarks.set_watermark(
                    session,
                    unit.practice_id,
                    unit.resource,
                    scope,
                    bounded(newest, began),
                    run_id=job.run_id,
                    now=ctx.clock(),
                    untrusted_after=local + skew,
                )
        job.counts = counts


def trusted(stored: datetime | None, latest: datetime, unit: Unit) -> datetime | None:
    """The stored watermark, unless it is later than ``latest`` (our clock plus the skew): one
    in the future (an older version's, or a wrong clock's) would read nothing for ever, so the
    whole window is read instead and the watermark set afresh."""
    if stored is None or stored <= latest:
        return stored
    log.warning("sync.watermark_in_future", unit=unit.key, watermark=stored.isoformat())
    return None


def _listings(job: Job, start: date, end: date, watermark: datetime | None) -> list[dict[str, Any]]:
    """One request per window, each from the watermark less the overlap (clock skew)."""
    overlap = timedelta(seconds=job.ctx.settings.sync_lastmodified_overlap_seconds)
    listings = []
    for w_start, w_end in split_windows(start, end, job.ctx.settings.sync_window_days):
        params = _window_params(job.unit, w_start, w_end)
        if watermark is not None:
            params["startlastmodified"] = to_eastern_param(watermark - overlap)
        listings.append(params)
    return listings


def covers_horizon(job: Job, start: date, end: date) -> bool:
    """Whether [start, end] covers today's horizon; if not, say on the run that the department's
    watermark was kept (a manual ``--from``/``--to`` run)."""
    settings = job.ctx.settings
    first, last = default_window(
        job.ctx.clock().date(),
        days_back=settings.sync_days_back,
        days_ahead=settings.sync_days_ahead,
    )
    if start <= first and last <= end:
        return True
    job.note = f"watermark kept: narrower than the horizon {first.isoformat()}..{last.isoformat()}"
    return False


def bounded(newest: datetime | None, began: datetime) -> datetime:
    """The newest ``lastmodified`` read, but never past the moment the read began (that moment
    when nothing was read): two clocks, so an odd value of one cannot push the watermark past
    changes not yet read. Whole seconds, as ``lastmodified``: a change later in the second the
    read began is stamped with that second."""
    began = began.replace(microsecond=0)
    return began if newest is None else min(newest, began)


def newest_change(
    current: datetime | None, rows: list[dict[str, Any]], column: str | None
) -> datetime | None:
    """The newest change time (the guard column, ``last_modified_at``) of ``rows`` and
    ``current``."""
    stamps = [r[column] for r in rows if column and r.get(column) is not None]
    if not stamps:
        return current
    best = max(stamps)
    return best if current is None or best > current else current
