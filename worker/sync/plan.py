"""Planning and running a sync request (resources x practices) as independent units of work.

The CLI and the Celery tasks both come here. A failure in one unit never stops the others; a
practice that refuses us (401, unknown practice) fails alone and its remaining units are
recorded as skipped. A 403 fails only the units of its endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog

from worker import metrics
from worker.athena.errors import AthenaError
from worker.resources import DEPARTMENTS, REGISTRY, ReadStrategy, get_resource, resource_names
from worker.store import departments
from worker.store.runs import Counts, RunResult, finish_run, start_run
from worker.sync.job import SyncContext
from worker.sync.runner import is_practice_fatal, run_unit, skip_unit
from worker.sync.sources import units_for
from worker.units import Unit
from worker.units import default_window as default_window  # re-exported (replay, doctor)

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
        unknown = [r for r in self.resources if r not in REGISTRY]
        if unknown:
            raise ValueError(f"unknown resource(s): {', '.join(unknown)}")
        if self.mode not in ("incremental", "reconcile", "changed"):
            raise ValueError(f"mode must be incremental, reconcile or changed, got {self.mode!r}")

    def practice_json(self, practice_id: str) -> dict[str, Any]:
        """One practice's share of the request, JSON-safe (a ``sync_practice`` letter keeps it)."""
        return {
            "resources": list(self.resources),
            "practice_id": practice_id,
            "mode": self.mode,
            "start": _iso(self.start),
            "end": _iso(self.end),
        }

    @classmethod
    def from_practice_json(cls, data: Mapping[str, Any]) -> SyncRequest:
        """Inverse of :meth:`practice_json`; ValueError/KeyError/TypeError when it is not one."""
        resources = data["resources"]
        if not isinstance(resources, list | tuple) or not resources:
            raise ValueError(f"resources must be a non-empty list, got {resources!r}")
        return cls(
            tuple(map(str, resources)),
            (str(data["practice_id"]),),
            str(data.get("mode") or "incremental"),
            _day(data.get("start")),
            _day(data.get("end")),
        )


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _day(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(str(value))


def expand_resources(names: Iterable[str]) -> tuple[str, ...]:
    """``all`` -> every resource, in dependency order (departments first: they carry zones)."""
    wanted = set(names)
    if "all" in wanted:
        wanted = set(REGISTRY)
    return tuple(r for r in resource_names() if r in wanted)


def live_department_ids(ctx: SyncContext, practice_id: str) -> list[str]:
    """Departments of the practice that are not marked deleted (hidden ones included)."""
    with ctx.sessions() as session:
        return departments.live_department_ids(session, practice_id)


def by_department(request: SyncRequest) -> list[str]:
    """The requested resources read per department (they need the departments' zones)."""
    return [r for r in request.resources if get_resource(r).read == ReadStrategy.BY_DEPARTMENT]


def practice_units(ctx: SyncContext, request: SyncRequest, practice_id: str) -> Iterator[Unit]:
    """The units for one practice, planned lazily (departments first: later units need them)."""
    per_department = by_department(request)
    needs_departments = per_department and DEPARTMENTS.name not in request.resources
    if needs_departments and not live_department_ids(ctx, practice_id):
        yield Unit(DEPARTMENTS.name, practice_id, "full")
    for name in request.resources:
        if get_resource(name).read == ReadStrategy.LISTING:
            yield Unit(name, practice_id, "full")
    if not per_department:
        return
    window = _window(ctx, request)
    department_ids = live_department_ids(ctx, practice_id)
    for name in per_department:
        yield from units_for(ctx, request.mode, name, practice_id, department_ids, window)


def _window(ctx: SyncContext, request: SyncRequest) -> tuple[date, date]:
    default_start, default_end = default_window(
        ctx.clock().date(),
        days_back=ctx.settings.sync_days_back,
        days_ahead=ctx.settings.sync_days_ahead,
    )
    return request.start or default_start, request.end or default_end


UnitRunner = Callable[[SyncContext, Unit], RunResult]
Send = Callable[[Unit], str]
"""Hands a unit to a worker and returns its task id (the Celery door's ``run_unit``)."""


@dataclass
class PracticePlan:
    """What one practice's fan-out did: units run here, units sent to workers, or waiting for
    departments another trigger is reading."""

    practice_id: str
    run_group: str
    ran: list[RunResult] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    waiting: bool = False

    def sent_units(self) -> list[Unit]:
        """The units handed to workers."""
        return [Unit.from_json(entry["unit"]) for entry in self.sent]

    def as_json(self) -> dict[str, Any]:
        """JSON-safe (the result of the ``sync_practice`` task)."""
        return {
            "practice_id": self.practice_id,
            "run_group": self.run_group,
            "ran": [r.as_json() for r in self.ran],
            "sent": self.sent,
        }


def fan_out(
    ctx: SyncContext,
    request: SyncRequest,
    practice_id: str,
    *,
    run: UnitRunner = run_unit,
    send: Send | None = None,
    retry_later: bool = False,
) -> PracticePlan:
    """The one fan-out of a practice, for the CLI and for Celery.

    Departments run here, first: the units read by department are planned from them. Every other
    unit runs here too, or is handed to ``send`` (a worker) when given. After a practice-level
    refusal (401, unknown practice) the rest is recorded skipped. With ``retry_later``, departments
    another trigger is reading while none is stored stop the plan (``waiting``: plan again later);
    otherwise the plan goes on and :func:`finish` records what could not be planned.
    """
    plan = PracticePlan(practice_id, ctx.run_group)
    refused: RunResult | None = None
    for unit in practice_units(ctx, request, practice_id):
        if refused is not None:
            plan.ran.append(skip_unit(ctx, unit, f"practice {practice_id} failed: {refused.error}"))
        elif send is not None and unit.resource != DEPARTMENTS.name:
            plan.sent.append({"unit": unit.to_json(), "task_id": send(unit)})
        else:
            result = run(ctx, unit)
            plan.ran.append(result)
            if retry_later and _departments_held(ctx, result):
                plan.waiting = True
                return plan
            if is_practice_fatal(result) and _practice_refuses(ctx, result):
                refused = result
                log.warning("sync.practice_failed", practice_id=practice_id, unit=unit.key)
    return plan


def _practice_refuses(ctx: SyncContext, result: RunResult) -> bool:
    """Whether a practice-level refusal holds for the whole practice. A 401 "Incorrect
    permissions." may also be production's answer for one endpoint not enabled for the key
    (ATHENA_API.md §7): ``/ping`` answers 401 only when the key lacks the practice, so one ping
    tells the two apart (a 401 from the ping itself, or the token endpoint, needs none)."""
    if result.http_status != 401 or result.refusal != "practice":
        return True
    try:
        ctx.client.get(result.unit.practice_id, "/ping")
    except AthenaError:
        return True
    log.warning("sync.endpoint_refused", practice_id=result.unit.practice_id, unit=result.unit.key)
    return False


def _departments_held(ctx: SyncContext, result: RunResult) -> bool:
    unit = result.unit
    held = unit.resource == DEPARTMENTS.name and result.status == "skipped"
    return held and not live_department_ids(ctx, unit.practice_id)


def finish(ctx: SyncContext, request: SyncRequest, plan: PracticePlan) -> list[RunResult]:
    """Every result of a plan that is done, with a failure for what could not be planned."""
    missed = unplanned(ctx, request, plan.practice_id, plan.ran, plan.sent_units())
    plan.ran.extend(missed)
    return plan.ran


def run_request(
    ctx: SyncContext, request: SyncRequest, *, run: UnitRunner = run_unit
) -> list[RunResult]:
    """Run every unit of the request in-process, practice by practice (the CLI)."""
    results: list[RunResult] = []
    for practice_id in request.practices:
        results.extend(run_practice(ctx, request, practice_id, run=run))
    return results


def run_practice(
    ctx: SyncContext, request: SyncRequest, practice_id: str, *, run: UnitRunner = run_unit
) -> list[RunResult]:
    """Run one practice's units here; after a practice-level refusal, skip the rest of them."""
    return finish(ctx, request, fan_out(ctx, request, practice_id, run=run))


def unplanned(
    ctx: SyncContext,
    request: SyncRequest,
    practice_id: str,
    results: list[RunResult],
    sent: Iterable[Unit] = (),
) -> list[RunResult]:
    """A failed result per resource read by department that was asked for but got no unit (run
    here or ``sent`` to workers) because the practice's departments are unknown (their unit was
    skipped or failed on an empty database): zero such units is a success only after the
    departments were read."""
    planned = {u.resource for u in [*sent, *(r.unit for r in results)]}
    missing = [name for name in by_department(request) if name not in planned]
    read = next((r for r in results if r.unit.resource == DEPARTMENTS.name), None)
    if not missing or read is None:
        return []
    # Read cleanly and empty: the practice has no department upstream, nothing to plan. Read,
    # but every department refused (dead-lettered): the practice has some, none usable.
    if read.status in ("succeeded", "partial") and not read.counts.fetched:
        return []
    return [_unplanned(ctx, request, practice_id, name, read) for name in missing]


def _unplanned(
    ctx: SyncContext, request: SyncRequest, practice_id: str, name: str, departments: RunResult
) -> RunResult:
    why = departments.error or (
        f"all {departments.counts.fetched} departments read were refused (see dead letters)"
    )
    error = (
        f"no {name} planned for practice {practice_id}: no departments in the database, "
        f"and reading them was {departments.status}: {why}"
    )
    unit = Unit(name, practice_id, request.mode)
    with ctx.sessions.begin() as session:
        run_id = start_run(
            session, unit, run_group=ctx.run_group, task_id=ctx.task_id, now=ctx.clock()
        )
        finish_run(session, run_id, Counts(), status="failed", now=ctx.clock(), error=error)
    log.warning("sync.unplanned", resource=name, practice_id=practice_id)
    metrics.unit_recorded(name, request.mode, "failed")
    return RunResult(unit, run_id, "failed", error=error)
