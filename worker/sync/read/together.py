"""Units read by department that name no department: every department of the practice at once,
through the resource's multi-department listing (``departmentid`` repeated), so a practice
costs one request per window instead of one per department and window.

- ``incremental``: per window, one listing of all the departments from the oldest of their
  watermarks (less the overlap; the whole horizon when one has none yet). The watermarks stay
  per department, as a unit per department keeps them, so either way of reading can follow the
  other: with the final page of a run that covered the horizon, each department's watermark
  becomes the newest ``lastmodified`` read (or its own, if newer) held to the API's clock when
  the read began (``by_department``'s rule, the same code).
- ``reconcile``: one window of all the departments, then what vanished from it is marked
  deleted within exactly that scope (those departments, that window), only after a complete,
  stable read (``read_then_mark``).
- A 403 or 404 on the multi-department listing (not "Invalid practice."): the practice's
  departments are read one by one in this same unit, the run says so (its note, a log event,
  ``source_state``), and later plans use units per department for ``REFUSAL_RECHECK``.

``CHUNK`` bounds the departments of one request (the length of its URL).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import structlog

from worker.athena.errors import AthenaError
from worker.parse import to_eastern_param
from worker.resources import Resource
from worker.resources import get_resource as resource_for
from worker.settings import Settings
from worker.store import watermarks
from worker.store.departments import department_zones, live_department_ids
from worker.store.sources import Source, record_multi_department, source_state
from worker.sync.job import Job, map_page, pages_in_turn, write_page
from worker.sync.read.by_department import bounded, covers_horizon, newest_change, trusted
from worker.sync.read.complete import read_then_mark
from worker.sync.subscriptions import unusable
from worker.units import split_windows

log = structlog.get_logger()

CHUNK = 100
REFUSAL_RECHECK = timedelta(days=1)

Groups = list[list[str]]


def multi_department_usable(
    settings: Settings, resource: Resource, state: Source, now: datetime
) -> bool:
    """Whether to read many departments per request: enabled, offered by the resource, and not
    refused for this practice within ``REFUSAL_RECHECK``."""
    refused = state.multi_department_refused_at
    recent = refused is not None and now - refused < REFUSAL_RECHECK
    offered = settings.sync_multi_department and resource.multi_department_path is not None
    return offered and not recent


def read_departments_together(job: Job) -> None:
    """Every department of the practice: one window (``reconcile``) or the horizon from the
    watermarks (``incremental``)."""
    unit, ctx = job.unit, job.ctx
    if unit.window_start is None or unit.window_end is None:
        raise ValueError(f"a {unit.resource} unit needs a window: {unit.key}")
    resource = resource_for(unit.resource)
    with ctx.sessions() as session:
        departments = live_department_ids(session, unit.practice_id)
        context = {"timezones": department_zones(session, unit.practice_id)}
        state = source_state(session, unit.practice_id, resource.name)
    if not departments:
        return
    read = _reconcile if unit.mode == "reconcile" else _incremental
    one_by_one = [[d] for d in departments]
    if not multi_department_usable(ctx.settings, resource, state, ctx.clock()):
        read(job, one_by_one, resource.path, context)
        return
    multi = str(resource.multi_department_path)
    chunks = [departments[i : i + CHUNK] for i in range(0, len(departments), CHUNK)]
    try:
        read(job, chunks, multi, context)
    except AthenaError as error:
        if error.path != multi or not unusable(error):
            raise
        _refused(job, resource, error)
        read(job, one_by_one, resource.path, context)
        return
    if state.multi_department_refused_at is not None:
        _record(job, resource, None)


def _refused(job: Job, resource: Resource, error: AthenaError) -> None:
    refusal = f"{error.status} {error.api_error or error.message}"[:500]
    _record(job, resource, refusal)
    job.note = f"{resource.multi_department_path} refused ({refusal}): read per department"
    log.warning("sync.multi_department_refused", status=error.status, error=error.api_error)


def _record(job: Job, resource: Resource, refusal: str | None) -> None:
    with job.ctx.sessions.begin() as session:
        record_multi_department(
            session, job.unit.practice_id, resource.name, refusal=refusal, now=job.ctx.clock()
        )


def _params(resource: Resource, group: list[str], start: date, end: date) -> dict[str, Any]:
    # A list is sent as the parameter repeated (requests does so): departmentid=1&departmentid=2.
    return {
        **resource.params,
        "departmentid": group if len(group) > 1 else group[0],
        "startdate": start.strftime("%m/%d/%Y"),
        "enddate": end.strftime("%m/%d/%Y"),
    }


def _reconcile(job: Job, groups: Groups, path: str, context: dict[str, Any]) -> None:
    """The unit's window for each group, each marking within its own scope."""
    unit = job.unit
    assert unit.window_start is not None and unit.window_end is not None
    resource = resource_for(unit.resource)
    model: Any = resource.model
    for group in groups:
        scope = (
            model.department_id.in_(group),
            model.local_date >= unit.window_start,
            model.local_date <= unit.window_end,
        )
        read_then_mark(
            job,
            _params(resource, group, unit.window_start, unit.window_end),
            lambda records: map_page(job, records, context),
            model,
            scope,
            path=path,
        )


def _incremental(job: Job, groups: Groups, path: str, context: dict[str, Any]) -> None:
    """Every window of every group from the group's oldest watermark; the departments'
    watermarks commit with the final page (a run over the horizon only)."""
    ctx, unit = job.ctx, job.unit
    assert unit.window_start is not None and unit.window_end is not None
    resource = resource_for(unit.resource)
    departments = [d for group in groups for d in group]
    skew = timedelta(seconds=ctx.settings.sync_clock_skew_seconds)
    with ctx.sessions() as session:
        stored = watermarks.get_watermarks(session, unit.practice_id, resource.name, departments)
    local = ctx.clock()
    marks = {d: trusted(m, local + skew, unit) for d, m in stored.items()}
    advance = covers_horizon(job, unit.window_start, unit.window_end)
    listings = _listings(job, resource, groups, marks)
    mapper = partial(map_page, job, context=context)
    newest: datetime | None = None
    began = local
    for index, page, mapped in pages_in_turn(job, listings, mapper, path=path):
        assert mapped is not None
        if index == 0 and page.number == 1 and page.server_time is not None:
            began = min(page.server_time, local + skew)  # as by_department: never far ahead
        newest = newest_change(newest, mapped.rows, resource.guard_column)
        with ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
            if advance and page.last and index == len(listings) - 1:
                moved = {d: bounded(_later(marks[d], newest), began) for d in departments}
                watermarks.set_watermarks(
                    session,
                    unit.practice_id,
                    resource.name,
                    moved,
                    run_id=job.run_id,
                    now=ctx.clock(),
                    untrusted_after=local + skew,
                )
        job.counts = counts


def _later(mark: datetime | None, newest: datetime | None) -> datetime | None:
    """The department's own watermark or the newest change read, whichever is later."""
    if mark is None or newest is None:
        return newest if mark is None else mark
    return max(mark, newest)


def _listings(
    job: Job, resource: Resource, groups: Groups, marks: dict[str, datetime | None]
) -> list[dict[str, Any]]:
    """One request per group and window, from the group's oldest watermark less the overlap."""
    settings, unit = job.ctx.settings, job.unit
    assert unit.window_start is not None and unit.window_end is not None
    overlap = timedelta(seconds=settings.sync_lastmodified_overlap_seconds)
    listings = []
    for group in groups:
        found = [marks.get(d) for d in group]
        oldest = None if any(m is None for m in found) else min(m for m in found if m)
        for w_start, w_end in split_windows(
            unit.window_start, unit.window_end, settings.sync_window_days
        ):
            params = _params(resource, group, w_start, w_end)
            if oldest is not None:
                params["startlastmodified"] = to_eastern_param(oldest - overlap)
            listings.append(params)
    return listings
