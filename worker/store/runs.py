"""The ``sync_runs`` bookkeeping: start a run, record progress with each page, finish it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import SyncRun
from worker.units import Unit


def utcnow() -> datetime:
    """The current instant, aware UTC."""
    return datetime.now(UTC)


@dataclass
class Counts:
    """Running totals of one unit of work, and whether its deletion marking was deferred."""

    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    dead_lettered: int = 0
    api_calls: int = 0
    deletions_deferred: bool = False
    more_waiting: bool = False

    def as_dict(self) -> dict[str, int]:
        """The counters, as columns of ``sync_runs``."""
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        """Inverse of :meth:`as_dict` (a Celery result); absent counters are zero."""
        values: dict[str, Any] = {name: int(data.get(name) or 0) for name in COUNTERS}
        values.update({name: bool(data.get(name)) for name in FLAGS})
        return cls(**values)


@dataclass
class RunResult:
    """What one unit of work ended as."""

    unit: Unit
    run_id: int | None
    status: str
    counts: Counts = field(default_factory=Counts)
    error: str | None = None
    error_class: str | None = None
    retriable: bool = False
    retry_after: float | None = None
    note: str | None = None
    http_status: int | None = None
    refusal: str | None = None
    """Who refused us, for a failed unit: ``credentials`` (the token endpoint), ``practice``
    (401, 404 "Invalid practice."), ``endpoint`` (403: this endpoint only), else None."""

    def as_json(self) -> dict[str, Any]:
        """JSON-safe summary (Celery results, CLI --wait output)."""
        return {
            "unit": self.unit.to_json(),
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "error_class": self.error_class,
            "note": self.note,
            **self.counts.as_dict(),
        }


_FIELDS = tuple(Counts.__dataclass_fields__)
FLAGS = ("deletions_deferred", "more_waiting")
COUNTERS = tuple(name for name in _FIELDS if name not in FLAGS)
_RUNS = cast(sa.Table, SyncRun.__table__)
# Once per page: Core, not an ORM update (which would look for the run among the session's
# objects to keep them in step), and the same statement every time.
_START = sa.insert(_RUNS).returning(_RUNS.c.id)
_PROGRESS = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("run_id"))
    .values({name: sa.bindparam(name) for name in _FIELDS})
)


def start_run(
    session: Session, unit: Unit, *, run_group: str, task_id: str | None, now: datetime
) -> int:
    """Insert a ``running`` row for the unit and return its id."""
    values = {
        "run_group": run_group,
        "resource": unit.resource,
        "practice_id": unit.practice_id,
        "department_id": unit.department_id,
        "window_start": unit.window_start,
        "window_end": unit.window_end,
        "mode": unit.mode,
        "status": "running",
        "started_at": now,
        "task_id": task_id,
    }
    # Core, not the ORM's unit of work: one INSERT … RETURNING per unit.
    return int(session.execute(_START, values).scalar_one())


def save_progress(session: Session, run_id: int, counts: Counts) -> None:
    """Write the counters; called in the same transaction as the page they cover."""
    session.execute(_PROGRESS, {"run_id": run_id, **counts.as_dict()})


def finish_run(
    session: Session,
    run_id: int,
    counts: Counts,
    *,
    status: str,
    now: datetime,
    error: str | None = None,
) -> None:
    """Close the run with its final status, counters and error summary."""
    session.execute(
        sa.update(_RUNS)
        .where(_RUNS.c.id == run_id)
        .values(status=status, finished_at=now, error_summary=error, **counts.as_dict())
    )


def record_skipped(
    session: Session, unit: Unit, *, run_group: str, task_id: str | None, reason: str, now: datetime
) -> int:
    """A unit that did not run (its lease was held, or its practice already failed)."""
    run_id = start_run(session, unit, run_group=run_group, task_id=task_id, now=now)
    finish_run(session, run_id, Counts(), status="skipped", now=now, error=reason)
    return run_id


def fail_orphaned_runs(session: Session, *, older_than: timedelta, now: datetime) -> int:
    """Mark ``running`` rows older than ``older_than`` failed: their worker died (SIGKILL, hard
    time limit) before it could finish them. Returns how many."""
    result = session.execute(
        sa.update(SyncRun)
        .where(SyncRun.status == "running", SyncRun.started_at < now - older_than)
        .values(
            status="failed",
            finished_at=now,
            error_summary="orphaned: the worker running it stopped before finishing",
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
