"""Appointments: per department, in windows of at most a month, always with cancellations.

``incremental`` reads what changed since the department's watermark; the new watermark (the
newest ``lastmodified`` read) is committed with the final page. ``reconcile`` reads whole windows
and marks what vanished from them, only after a complete read.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import Appointment, Department
from tasks import get_resource as resource_for
from worker.parse import BadRecord, to_eastern_param, zone_from_offset, zone_info
from worker.sync import state
from worker.sync.job import Job, map_page, pages_in_turn, read_then_mark, write_page
from worker.sync.units import Unit, split_windows


def department_zones(session: Session, practice_id: str) -> dict[str, str]:
    """Department id -> IANA zone name, from the departments already synced.

    A department whose ``timezonename`` is missing or unknown falls back to the US zone its
    standard offset and DST flag name (both must be present); otherwise it is left out, so its
    appointments are dead-lettered, not stored at a guessed instant.
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
        str(dept): (name if _known_zone(name) else None)
        or (None if no_dst is None else zone_from_offset(offset, not no_dst))
        for dept, name, offset, no_dst in rows
    }
    return {dept: zone for dept, zone in zones.items() if zone}


def _known_zone(name: str | None) -> bool:
    if not name:
        return False
    try:
        zone_info(name)
    except BadRecord:
        return False
    return True


def _appointment_params(unit: Unit, start: date, end: date) -> dict[str, Any]:
    return {
        **resource_for("appointments").params,
        "departmentid": unit.department_id,
        "startdate": start.strftime("%m/%d/%Y"),
        "enddate": end.strftime("%m/%d/%Y"),
    }


def sync_appointments(job: Job) -> None:
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
    read_then_mark(
        job, _appointment_params(job.unit, start, end),
        lambda records: map_page(job, records, context), Appointment, scope,
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
    listings = []
    for w_start, w_end in split_windows(start, end, ctx.settings.sync_window_days):
        params = _appointment_params(unit, w_start, w_end)
        if watermark is not None:
            params["startlastmodified"] = to_eastern_param(watermark - overlap)
        listings.append(params)
    mapper = partial(map_page, job, context=context)
    for index, page, mapped in pages_in_turn(job, listings, mapper):
        assert mapped is not None
        newest = _newest(newest, mapped.rows)
        with ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
            if page.last and index == len(listings) - 1:
                state.set_watermark(
                    session, unit.practice_id, "appointments", scope, newest,
                    run_id=job.run_id, now=ctx.clock(),
                )  # fmt: skip
        job.counts = counts


def _newest(current: datetime | None, rows: list[dict[str, Any]]) -> datetime | None:
    stamps = [r["last_modified_at"] for r in rows if r.get("last_modified_at") is not None]
    if not stamps:
        return current
    best = max(stamps)
    return best if current is None or best > current else current
