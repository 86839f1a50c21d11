"""How fresh each practice's copy is, from the database alone, in one statement.

``worker.store.freshness_query.read_facts`` asks Postgres once (however many departments) for
four kinds of grouped facts: the newest successful read per practice, resource, department and
source (``sync_runs``), the open dead letters, the watermarks (``sync_state``) and the live
departments. :func:`assemble` (pure) turns them into one :class:`Freshness` row per practice x
resource, per department for resources read by department.

A successful read is a ``sync_runs`` row ``succeeded`` or ``partial``, and only a read of the
whole horizon says how fresh a copy is (``Fact.covers``): a changed-feed read, a complete listing,
or a read by department whose window spans the horizon (``SYNC_DAYS_BACK``..``SYNC_DAYS_AHEAD``)
as of the day it began. A narrow manual run (``--from D --to D``) or one reconcile window read
the other days not at all, so they never make a department look fresh. A department is covered
by its own such runs (source ``booked``), by a practice-level one (department NULL: one
multi-department listing), and by a practice-level run in mode ``changed`` (the changed-data
feed covers every department of the practice, source ``changed``): :func:`changed_coverage`. A
listing resource is covered by its practice-level runs (source ``listing``). The age counts from
when the covering read *began*: a change made after that may not be in it. A row's state compares
how late it is (its age past the schedule interval of the beat entry that reads it) with
FRESHNESS_WARN_MINUTES and FRESHNESS_ERROR_MINUTES. Open letters of a department's row are its
own and the practice-level ones (department NULL: a failed multi-department or feed read
concerns every department).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.resources import REGISTRY, ReadStrategy
from worker.settings import Settings

STATES = ("ok", "warn", "error")


@dataclass(frozen=True)
class Fact:
    """One grouped fact: ``read`` (``at``: newest start, ``finished``: newest end, ``changed``:
    a changed-feed run, ``covers``: runs that read the whole horizon), ``letters`` (``count``),
    ``watermark`` (``at``) or ``department``."""

    kind: str
    practice_id: str
    resource: str | None
    department_id: str | None
    changed: bool = False
    at: datetime | None = None
    finished: datetime | None = None
    count: int = 0
    covers: bool = True


@dataclass(frozen=True)
class Horizon:
    """The appointment horizon in days around a run's day (``SYNC_DAYS_BACK``,
    ``SYNC_DAYS_AHEAD``): a read by department covers it only with a window spanning it."""

    days_back: int = 7
    days_ahead: int = 90


@dataclass(frozen=True)
class Thresholds:
    """Seconds late (age past the resource's schedule interval) that make a row warn / error."""

    warn_seconds: float
    error_seconds: float
    every_seconds: Mapping[str, float]
    """Seconds between the scheduled reads of each resource."""
    horizon: Horizon = Horizon()
    """What a read by department must span to count."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        """FRESHNESS_WARN/ERROR_MINUTES past the beat interval that reads each resource."""
        every = {
            name: 60.0
            * (
                settings.schedule_appointments_minutes
                if by_department(name)
                else settings.schedule_reference_minutes
            )
            for name in REGISTRY
        }
        return cls(
            60.0 * settings.freshness_warn_minutes,
            60.0 * settings.freshness_error_minutes,
            every,
            Horizon(settings.sync_days_back, settings.sync_days_ahead),
        )

    def state(self, resource: str, age: float | None) -> str:
        """``error`` when never read or later than the error threshold, ``warn`` past the warn
        threshold, else ``ok``."""
        if age is None:
            return "error"
        late = age - self.every_seconds.get(resource, 0.0)
        if late > self.error_seconds:
            return "error"
        return "warn" if late > self.warn_seconds else "ok"


@dataclass(frozen=True)
class Freshness:
    """One row of ``athena-sync freshness``."""

    practice_id: str
    resource: str
    department_id: str | None
    source: str | None
    last_read_at: datetime | None
    age_seconds: float | None
    watermark: datetime | None
    open_letters: int
    state: str

    def as_json(self) -> dict[str, Any]:
        """JSON-safe (times as ISO 8601)."""
        return {
            "practice_id": self.practice_id,
            "resource": self.resource,
            "department_id": self.department_id,
            "source": self.source,
            "last_read_at": _iso(self.last_read_at),
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
            "watermark": _iso(self.watermark),
            "open_letters": self.open_letters,
            "state": self.state,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def by_department(resource: str) -> bool:
    """Whether a resource is read (and so kept fresh) per department."""
    return REGISTRY[resource].read == ReadStrategy.BY_DEPARTMENT


@dataclass(frozen=True)
class Read:
    """The newest successful read covering something, and where it came from."""

    at: datetime
    source: str


def changed_coverage(facts: Iterable[Fact], practice_id: str, resource: str) -> Read | None:
    """The newest practice-level changed-feed read of a resource: it covers every department."""
    reads = [
        f.at
        for f in facts
        if f.kind == "read"
        and f.changed
        and f.covers
        and f.department_id is None
        and (f.practice_id, f.resource) == (practice_id, resource)
        and f.at is not None
    ]
    return Read(max(reads), "changed") if reads else None


def _id_order(department_id: str) -> tuple[int, str]:
    return len(department_id), department_id  # numeric ids in numeric order: 2 before 10


def _newest(*reads: Read | None) -> Read | None:
    found = [r for r in reads if r is not None]
    return max(found, key=lambda r: r.at) if found else None


class _Index:
    """The facts looked up by (kind, practice, resource, department)."""

    def __init__(self, facts: Sequence[Fact]) -> None:
        self.facts = facts
        self.reads: dict[tuple[str, str | None, str | None], datetime] = {}
        self.letters: dict[tuple[str, str | None, str | None], int] = {}
        self.marks: dict[tuple[str, str | None, str | None], datetime | None] = {}
        self.departments: dict[str, list[str]] = {}
        for f in facts:
            key = (f.practice_id, f.resource, f.department_id)
            if f.kind == "read" and f.covers and not f.changed and f.at is not None:
                self.reads[key] = max(f.at, self.reads.get(key, f.at))
            elif f.kind == "letters":
                self.letters[key] = self.letters.get(key, 0) + f.count
            elif f.kind == "watermark":
                self.marks[key] = f.at
            elif f.kind == "department" and f.department_id is not None:
                self.departments.setdefault(f.practice_id, []).append(f.department_id)

    def practices(self) -> list[str]:
        return sorted({f.practice_id for f in self.facts})

    def open_letters(self, practice_id: str, resource: str, department_id: str | None) -> int:
        """The row's own open letters, and for a department's row the practice-level ones."""
        own = self.letters.get((practice_id, resource, department_id), 0)
        if department_id is None:
            return own
        return own + self.letters.get((practice_id, resource, None), 0)

    def read(self, practice_id: str, resource: str, department_id: str | None) -> Read | None:
        at = self.reads.get((practice_id, resource, department_id))
        if at is None:
            return None
        return Read(at, "booked" if by_department(resource) else "listing")


def assemble(
    facts: Sequence[Fact],
    *,
    practices: Sequence[str],
    thresholds: Thresholds,
    now: datetime,
) -> list[Freshness]:
    """One row per practice x resource (x live department for resources read by department);
    ``practices`` empty: every practice the facts name. A practice with no stored departments
    gets one department-less row per such resource."""
    index = _Index(facts)
    rows: list[Freshness] = []
    for practice_id in practices or index.practices():
        for resource in REGISTRY:
            departments: list[str | None] = [None]
            changed = None
            if by_department(resource):
                departments = [*sorted(index.departments.get(practice_id, []), key=_id_order)] or [
                    None
                ]
                changed = changed_coverage(facts, practice_id, resource)
            # A practice-level booked read (one multi-department listing) covers every department.
            whole = index.read(practice_id, resource, None) if departments != [None] else None
            for department_id in departments:
                read = _newest(index.read(practice_id, resource, department_id), whole, changed)
                key = (practice_id, resource, department_id)
                age = None if read is None else max(0.0, (now - read.at).total_seconds())
                rows.append(
                    Freshness(
                        practice_id,
                        resource,
                        department_id,
                        None if read is None else read.source,
                        None if read is None else read.at,
                        age,
                        index.marks.get(key),
                        index.open_letters(*key),
                        thresholds.state(resource, age),
                    )
                )
    return rows


def last_successes(facts: Iterable[Fact]) -> dict[tuple[str, str], datetime]:
    """When the newest successful run of each practice x resource finished."""
    found: dict[tuple[str, str], datetime] = {}
    for f in facts:
        if f.kind == "read" and f.resource is not None and f.finished is not None:
            key = (f.practice_id, f.resource)
            found[key] = max(found.get(key, f.finished), f.finished)
    return found


def exit_code(rows: Iterable[Freshness]) -> int:
    """2 when any row is ``error``, 1 when any is ``warn``, else 0 (as ``dbt source freshness``)."""
    states = {r.state for r in rows}
    return 2 if "error" in states else 1 if "warn" in states else 0
