"""Planning and running a sync request (resources x practices) as independent units of work.

The CLI and the Celery tasks both come here. A failure in one unit never stops the others; a
practice that refuses us (401, unknown practice) fails alone and its remaining units are
recorded as skipped. A 403 fails only the units of its endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
import structlog

from models import Department
from worker.sync.job import SyncContext
from worker.sync.runner import is_practice_fatal, run_unit, skip_unit
from worker.sync.runs import Counts, RunResult, finish_run, start_run
from worker.sync.units import LISTING_RESOURCES, RESOURCES, Unit, appointment_units
from worker.sync.units import default_window as default_window  # re-exported (replay, doctor)

log = structlog.get_logger()


@dataclass(frozen=True)
class SyncRequest:
    """What a person or a schedule asked for."""

    resources: tuple[str, ...]
    practices: tuple[str, ...]
    mode: str = "incremental"
    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.resources if r not in RESOURCES]
        if unknown:
            raise ValueError(f"unknown resource(s): {', '.join(unknown)}")
        if self.mode not in ("incremental", "reconcile"):
            raise ValueError(f"mode must be incremental or reconcile, got {self.mode!r}")

    def practice_json(self, practice_id: str) -> dict[str, Any]:
        """One practice's share of the request, JSON-safe (a ``sync_practice`` letter keeps it)."""
        return {
            "resources": list(self.resources), "practice_id": practice_id, "mode": self.mode,
            "start": _iso(self.start), "end": _iso(self.end),
        }  # fmt: skip

    @classmethod
    def from_practice_json(cls, data: Mapping[str, Any]) -> SyncRequest:
        """Inverse of :meth:`practice_json`; ValueError/KeyError/TypeError when it is not one."""
        resources = data["resources"]
        if not isinstance(resources, list | tuple) or not resources:
            raise ValueError(f"resources must be a non-empty list, got {resources!r}")
        return cls(
            tuple(map(str, resources)), (str(data["practice_id"]),),
            str(data.get("mode") or "incremental"), _day(data.get("start")), _day(data.get("end")),
        )  # fmt: skip


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def expand_resources(names: Iterable[str]) -> tuple[str, ...]:
    """``all`` -> every resource, in dependency order (departments first: they carry zones)."""
    wanted = set(names)
    if "all" in wanted:
        wanted = set(RESOURCES)
    return tuple(r for r in RESOURCES if r in wanted)


def live_department_ids(ctx: SyncContext, practice_id: str) -> list[str]:
    """Departments of the practice that are not marked deleted (hidden ones included)."""
    with ctx.sessions() as session:
        return list(
            session.scalars(
                sa.select(Department.department_id)
                .where(Department.practice_id == practice_id, Department.deleted_at.is_(None))
                .order_by(Department.department_id)
            )
        )


def practice_units(ctx: SyncContext, request: SyncRequest, practice_id: str) -> Iterator[Unit]:
    """The units for one practice, planned lazily (appointments need departments first)."""
    resources = request.resources
    needs_zones = "appointments" in resources and "departments" not in resources
    if needs_zones and not live_department_ids(ctx, practice_id):
        yield Unit("departments", practice_id, "full")
    for resource in resources:
        if resource in LISTING_RESOURCES:
            yield Unit(resource, practice_id, "full")
    if "appointments" in resources:
        start, end = _window(ctx, request)
        yield from appointment_units(
            practice_id,
            live_department_ids(ctx, practice_id),
            mode=request.mode,
            start=start,
            end=end,
            max_days=ctx.settings.sync_window_days,
        )


def _window(ctx: SyncContext, request: SyncRequest) -> tuple[date, date]:
    default_start, default_end = default_window(
        ctx.clock().date(),
        days_back=ctx.settings.sync_days_back,
        days_ahead=ctx.settings.sync_days_ahead,
    )
    return request.start or default_start, request.end or default_end


UnitRunner = Callable[[SyncContext, Unit], RunResult]


def run_request(
    ctx: SyncContext, request: SyncRequest, *, run: UnitRunner = run_unit
) -> list[RunResult]:
    """Run every unit of the request in-process, practice by practice."""
    results: list[RunResult] = []
    for practice_id in request.practices:
        results.extend(run_practice(ctx, request, practice_id, run=run))
    return results


def run_practice(
    ctx: SyncContext, request: SyncRequest, practice_id: str, *, run: UnitRunner = run_unit
) -> list[RunResult]:
    """Run one practice's units; after a practice-level refusal, skip the rest of them."""
    results: list[RunResult] = []
    refused: RunResult | None = None
    for unit in practice_units(ctx, request, practice_id):
        if refused is not None:
            results.append(skip_unit(ctx, unit, f"practice {practice_id} failed: {refused.error}"))
            continue
        result = run(ctx, unit)
        results.append(result)
        if is_practice_fatal(result):
            refused = result
            log.warning("sync.practice_failed", practice_id=practice_id, unit=unit.key)
    results.extend(unplanned_appointments(ctx, request, practice_id, results))
    return results


def unplanned_appointments(
    ctx: SyncContext,
    request: SyncRequest,
    practice_id: str,
    results: list[RunResult],
    sent: Iterable[Unit] = (),
) -> list[RunResult]:
    """A failed result when appointments were asked for but none was planned (run here or
    ``sent`` to workers) because the practice's departments are unknown (their unit was skipped
    or failed on an empty database): zero appointment units is a success only after departments
    were read."""
    if "appointments" not in request.resources:
        return []
    if any(u.resource == "appointments" for u in [*sent, *(r.unit for r in results)]):
        return []
    departments = next((r for r in results if r.unit.resource == "departments"), None)
    if departments is None or departments.status in ("succeeded", "partial"):
        return []  # read cleanly: the practice has no departments upstream
    error = (
        f"no appointments planned for practice {practice_id}: no departments in the database, "
        f"and reading them was {departments.status}: {departments.error}"
    )
    unit = Unit("appointments", practice_id, request.mode)
    with ctx.sessions.begin() as session:
        run_id = start_run(session, unit, run_group=ctx.run_group, task_id=ctx.task_id,
                           now=ctx.clock())  # fmt: skip
        finish_run(session, run_id, Counts(), status="failed", now=ctx.clock(), error=error)
    log.warning("sync.appointments_unplanned", practice_id=practice_id)
    return [RunResult(unit, run_id, "failed", error=error)]
