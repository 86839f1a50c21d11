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
- Every department must be accounted for by the answers (``accounting``): one the listing did
  not show, while it is not known to answer for several departments, is read alone in the same
  unit before its watermark moves or anything of it is marked deleted. An answer holding
  departments not asked for fails the unit (a letter) and counts as a refusal.

``CHUNK`` bounds the departments of one request (the length of its URL).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import structlog

from worker.athena.client import Page
from worker.athena.errors import AnswerError, AthenaError
from worker.parse import to_eastern_param
from worker.resources import Resource
from worker.resources import get_resource as resource_for
from worker.settings import Settings
from worker.store import watermarks
from worker.store.departments import department_zones, live_department_ids
from worker.store.sources import Source, record_multi_department, source_state
from worker.sync.job import Job, map_page, pages_in_turn, write_page
from worker.sync.pages import MappedPage
from worker.sync.read.accounting import (
    Answer,
    Unaccounted,
    asked,
    conclude,
    left_alone,
    seeing,
    trusted,
)
from worker.sync.read.by_department import bounded, covers_horizon, newest_change
from worker.sync.read.by_department import trusted as trusted_mark
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
    verified = state.multi_department_verified_at
    if not multi_department_usable(ctx.settings, resource, state, ctx.clock()):
        read(job, one_by_one, resource.path, context, verified)
        return
    multi = str(resource.multi_department_path)
    chunks = [departments[i : i + CHUNK] for i in range(0, len(departments), CHUNK)]
    try:
        read(job, chunks, multi, context, verified)
    except AnswerError as error:
        # Nothing it answers can be trusted: the unit fails (a letter), plans read per department.
        _record(job, resource, f"{error.message} ({error.detail})"[:500])
        log.warning("sync.multi_department_wrong_answer", departments=error.detail)
        raise
    except AthenaError as error:
        if error.path != multi or not unusable(error):
            raise
        _refused(job, resource, error)
        read(job, one_by_one, resource.path, context, verified)
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


def _reconcile(
    job: Job, groups: Groups, path: str, context: dict[str, Any], verified: datetime | None
) -> None:
    """The unit's window for each group, each marking within the departments its answer
    accounts for; the others are read alone."""
    resource = resource_for(job.unit.resource)
    answers: list[Answer] = []
    alone: list[str] = []
    found = 0
    for group in groups:
        answer = Answer(tuple(group), path, job.unit.practice_id)
        answers.append(answer)
        left = Unaccounted(job, answer, answers, verified, partial(_window, job))
        read_then_mark(
            job,
            _params(resource, group, *_unit_window(job)),
            seeing(
                answer if path != resource.path else None, partial(map_page, job, context=context)
            ),
            resource.model,
            left.accounted,
            path=path,
        )
        alone += left.departments()
        found += sum(_reconcile_alone(job, d, context) for d in left.departments())
    conclude(job, verified, answers, alone, found)


def _unit_window(job: Job) -> tuple[date, date]:
    unit = job.unit
    assert unit.window_start is not None and unit.window_end is not None
    return unit.window_start, unit.window_end


def _window(job: Job, departments: list[str]) -> tuple[Any, ...]:
    """The rows a read of ``departments`` over the unit's window covers."""
    model: Any = resource_for(job.unit.resource).model
    return (
        model.department_id.in_(departments),
        model.local_date >= job.unit.window_start,
        model.local_date <= job.unit.window_end,
    )


def _reconcile_alone(job: Job, department: str, context: dict[str, Any]) -> int:
    """One department's window read alone, then what vanished from it marked; its records."""
    resource = resource_for(job.unit.resource)
    found = [0]

    def mapper(records: list[Any]) -> MappedPage:
        found[0] += len(records)
        return map_page(job, records, context)

    read_then_mark(
        job,
        _params(resource, [department], *_unit_window(job)),
        mapper,
        resource.model,
        _window(job, [department]),
        path=resource.path,
    )
    return found[0]


class _Progress:
    """The departments' watermarks as an incremental read goes: the API's clock when its first
    request was sent, the newest change read; moved with the unit's final page (a run over the
    horizon only)."""

    def __init__(
        self, job: Job, marks: dict[str, datetime | None], local: datetime, advance: bool
    ) -> None:
        self.job, self.marks, self.advance = job, marks, advance
        self.latest = local + timedelta(seconds=job.ctx.settings.sync_clock_skew_seconds)
        self.began = local
        self.newest: datetime | None = None
        self.first = True

    def write(self, page: Page, mapped: MappedPage, *, final: bool) -> None:
        """One page, and with the final one the watermarks."""
        job, ctx = self.job, self.job.ctx
        if self.first and page.server_time is not None:
            self.began = min(page.server_time, self.latest)  # as by_department: never far ahead
        self.first = False
        guard = resource_for(job.unit.resource).guard_column
        self.newest = newest_change(self.newest, mapped.rows, guard)
        with ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
            if self.advance and final:
                moved = {
                    d: bounded(_later(m, self.newest), self.began) for d, m in self.marks.items()
                }
                watermarks.set_watermarks(
                    session,
                    job.unit.practice_id,
                    job.unit.resource,
                    moved,
                    run_id=job.run_id,
                    now=ctx.clock(),
                    untrusted_after=self.latest,
                )
        job.counts = counts


def _incremental(
    job: Job, groups: Groups, path: str, context: dict[str, Any], verified: datetime | None
) -> None:
    """Every window of every group from the group's oldest watermark, then the departments no
    answer accounted for alone; the departments' watermarks commit with the final page (a run
    over the horizon only)."""
    ctx, unit = job.ctx, job.unit
    assert unit.window_start is not None and unit.window_end is not None
    resource = resource_for(unit.resource)
    departments = [d for group in groups for d in group]
    skew = timedelta(seconds=ctx.settings.sync_clock_skew_seconds)
    with ctx.sessions() as session:
        stored = watermarks.get_watermarks(session, unit.practice_id, resource.name, departments)
    local = ctx.clock()
    marks = {d: trusted_mark(m, local + skew, unit) for d, m in stored.items()}
    progress = _Progress(job, marks, local, covers_horizon(job, unit.window_start, unit.window_end))
    listings = _listings(job, resource, groups, marks)
    answers = [Answer(asked(p), path, unit.practice_id) for p in listings]
    checked = path != resource.path
    mapper = partial(map_page, job, context=context)
    alone: list[dict[str, Any]] = []
    for index, page, mapped in pages_in_turn(job, listings, mapper, path=path):
        assert mapped is not None
        if checked:
            answers[index].see(mapped)
        final = page.last and index == len(listings) - 1
        if final:
            alone = left_alone(listings, answers, trusted(verified, ctx.clock(), answers))
        progress.write(page, mapped, final=final and not alone)
    found = 0
    if alone:  # before any watermark moves (see accounting)
        for index, page, mapped in pages_in_turn(job, alone, mapper, path=resource.path):
            assert mapped is not None
            found += len(page.records)
            progress.write(page, mapped, final=page.last and index == len(alone) - 1)
    conclude(job, verified, answers, [str(p["departmentid"]) for p in alone], found)


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
