"""One practice's data: reference records, appointments, malformed rows, and their changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from sandbox import appointments as appts
from sandbox import clock, reference
from sandbox.appointments import Appointment
from sandbox.config import SandboxConfig
from sandbox.query import BookedFilter
from sandbox.reference import Record

SANDBOX_USER = "API-SANDBOX"


@dataclasses.dataclass(frozen=True)
class Mutation:
    """How many appointments to change in one ``mutate`` call."""

    cancel: int = 0
    modify: int = 0
    delete: int = 0
    add: int = 0
    seed: int | None = None


class PracticeStore:
    """Data of one practice. Readers see an immutable snapshot (``served``); writers replace it."""

    def __init__(
        self,
        practice_id: str,
        config: SandboxConfig,
        *,
        empty: bool = False,
        now: Callable[[], dt.datetime] = clock.eastern_now,
    ) -> None:
        self.practice_id = practice_id
        self._config = config
        self._eastern_now = now  # the server's clock, Eastern wall time (stamps `lastmodified`)
        rng = random.Random(f"{config.seed}:{practice_id}")
        sizes = (config.departments, config.providers, config.appointment_types)
        if empty:
            self.ref = reference.empty(practice_id)
            self._valid: list[Appointment] = []
        else:
            self.ref = reference.build(rng, practice_id, sizes, config.anchor_date)
            self._valid = appts.generate(
                rng,
                self.ref,
                count=config.appointments,
                first=config.first_day,
                days=config.days,
                anchor=config.anchor_date,
            )
        self._malformed: list[Appointment] = []
        self._deleted: list[str] = []
        self._mutations = 0
        self._lock = threading.Lock()
        self.served: tuple[Appointment, ...] = ()
        self._by_id: dict[str, Appointment] = {}
        self._publish()

    def _publish(self) -> None:
        rows = sorted([*self._valid, *self._malformed], key=lambda a: a.sort_key)
        self._by_id = {a.appointmentid: a for a in rows if a.appointmentid}
        by_department: dict[str, list[int]] = {}
        for position, row in enumerate(rows):
            by_department.setdefault(row.departmentid, []).append(position)
        # Readers take (served, index) as one reference: a mutation swaps both at once.
        self._index = _DayIndex(tuple(rows), by_department)
        self._recent: dict[tuple[int, BookedFilter], list[Appointment]] = {}
        self.served = self._index.rows

    def set_malformed(self, count: int, seed: int) -> None:
        """Serve ``count`` malformed rows (made from the fault seed) alongside the valid ones."""
        with self._lock:
            rng = random.Random(f"{seed}:{self.practice_id}:malformed")
            self._malformed = appts.malformed(rng, self._valid, count)
            self._publish()

    def get(self, appointment_id: str) -> Appointment | None:
        """One served appointment by id (cancelled included), or None."""
        return self._by_id.get(appointment_id)

    def booked(self, f: BookedFilter) -> list[Appointment]:
        """Served rows matching ``/appointments/booked`` filters, in listing order.

        The last few answers are kept per filter (for the current data only), so paging
        through a listing filters once rather than once per page.
        """
        index = self._index
        key = (id(index), f)
        with self._lock:
            hit = self._recent.get(key)
        if hit is not None:
            return hit
        rows = [a for a in index.candidates(f) if _matches(a, f)]
        with self._lock:
            if self._index is index:
                self._recent[key] = rows
                while len(self._recent) > RECENT_FILTERS:
                    self._recent.pop(next(iter(self._recent)))
        return rows

    def _now(self) -> dt.datetime:
        # "now" in Eastern wall time, but never before existing rows (a future anchor_date).
        latest = max((a.lastmodified for a in self._valid), default=dt.datetime.min)
        return max(self._eastern_now(), latest + dt.timedelta(seconds=1))

    def mutate(self, change: Mutation) -> dict[str, Any]:
        """Cancel, modify, delete and add appointments; report exactly what changed."""
        with self._lock:
            self._mutations += 1
            seed = change.seed
            rng = random.Random(
                seed
                if seed is not None
                else f"{self._config.seed}:{self.practice_id}:m{self._mutations}"
            )
            now = self._now()
            rows = {a.appointmentid: a for a in self._valid}
            booked = sorted(i for i, a in rows.items() if a.status == "f")
            cancelled = rng.sample(booked, min(change.cancel, len(booked)))
            for appointment_id in cancelled:
                rows[appointment_id] = self._cancel(rng, rows[appointment_id], now)
            left = sorted(i for i, a in rows.items() if a.status != "x" and i not in cancelled)
            modified = [
                self._modify(rng, rows, i, now, n)
                for n, i in enumerate(rng.sample(left, min(change.modify, len(left))))
            ]
            touched = set(cancelled) | {m["appointmentid"] for m in modified}
            rest = sorted(set(rows) - touched)
            deleted = rng.sample(rest, min(change.delete, len(rest)))
            for appointment_id in deleted:
                del rows[appointment_id]
            added = self._add(rng, rows, change.add, now)
            self._deleted.extend(deleted)
            self._valid = list(rows.values())
            self._publish()
        return {
            "practiceid": self.practice_id,
            "lastmodified": clock.fmt_datetime(now),
            "cancelled": sorted(cancelled),
            "modified": sorted(modified, key=lambda m: str(m["appointmentid"])),
            "deleted": sorted(deleted),
            "added": added,
        }

    def _cancel(self, rng: random.Random, row: Appointment, now: dt.datetime) -> Appointment:
        record = dict(row.record, appointmentstatus="x", lastmodified=clock.fmt_datetime(now))
        record["lastmodifiedby"] = SANDBOX_USER
        reason_id, reason, noshow = appts.CANCEL_REASONS[rng.randrange(len(appts.CANCEL_REASONS))]
        record.update(
            cancelledby=SANDBOX_USER,
            cancelleddatetime=clock.fmt_datetime(now),
            cancelreasonid=reason_id,
            cancelreasonname=reason,
            cancelreasonnoshow=noshow,
            cancelreasonslotavailable=not noshow,
        )
        return _replace(row, record, status="x", lastmodified=now)

    def _modify(
        self,
        rng: random.Random,
        rows: dict[str, Appointment],
        appointment_id: str,
        now: dt.datetime,
        n: int,
    ) -> dict[str, Any]:
        row = rows[appointment_id]
        record = dict(row.record, lastmodified=clock.fmt_datetime(now), lastmodifiedby=SANDBOX_USER)
        choices = [
            p for p in self.ref.department_providers[row.departmentid] if str(p) != row.providerid
        ]
        changes: dict[str, dict[str, str]]
        if n % 2 == 1 and choices:
            provider = rng.choice(choices)
            record.update(providerid=str(provider), hl7providerid=provider)
            changes = {"providerid": {"old": row.providerid, "new": str(provider)}}
            rows[appointment_id] = _replace(row, record, providerid=str(provider), lastmodified=now)
        else:
            start = row.starttime
            while start == row.starttime:
                start = f"{8 + rng.randrange(9):02d}:{rng.choice((0, 15, 30, 45)):02d}"
            record["starttime"] = start
            changes = {"starttime": {"old": row.starttime, "new": start}}
            rows[appointment_id] = _replace(row, record, starttime=start, lastmodified=now)
        return {"appointmentid": appointment_id, "changes": changes}

    def _add(
        self, rng: random.Random, rows: dict[str, Appointment], count: int, now: dt.datetime
    ) -> list[str]:
        known = [int(i) for i in rows] + [int(i) for i in self._deleted] + [1_000_000]
        next_id = max(known) + 1
        added = []
        config = self._config
        for _ in range(count):
            day = config.first_day + dt.timedelta(days=rng.randrange(config.days))
            start = f"{8 + rng.randrange(9):02d}:{rng.choice((0, 15, 30, 45)):02d}"
            dept = self.ref.departments[rng.randrange(len(self.ref.departments))]
            row = appts.make_row(
                rng,
                self.ref,
                appointment_id=next_id,
                day=day,
                start=start,
                department=dept,
                status="f",
                modified=now,
            )
            record = dict(row.record, scheduleddatetime=clock.fmt_datetime(now))
            record.update(scheduledby=SANDBOX_USER, lastmodifiedby=SANDBOX_USER)
            rows[row.appointmentid] = _replace(row, record)
            added.append(row.appointmentid)
            next_id += 1
        return added

    def truth(self) -> dict[str, Any]:
        """Everything this practice holds, in the served JSON shapes."""
        ref = self.ref
        return {
            "practiceid": self.practice_id,
            "practiceinfo": ref.practiceinfo,
            "providers": list(ref.providers),
            "departments": [with_providerlist(self.ref, d) for d in ref.departments],
            "hiddendepartmentids": sorted(ref.hidden_department_ids, key=int),
            "appointmenttypes": list(ref.appointmenttypes),
            "appointments": [a.record for a in self.served if a.malformed is None],
            "deletedappointmentids": list(self._deleted),
            "malformed": [
                {"reason": a.malformed, "record": a.record} for a in self.served if a.malformed
            ],
        }


RECENT_FILTERS = 16


class _DayIndex:
    """Served rows by department and day, so a department-month query reads only its rows."""

    def __init__(self, rows: tuple[Appointment, ...], by_department: dict[str, list[int]]) -> None:
        self.rows = rows
        self._days = [a.day for a in rows]
        self._departments = {
            dept: (positions, [rows[p].day for p in positions])
            for dept, positions in by_department.items()
        }

    def candidates(self, f: BookedFilter) -> list[Appointment]:
        """Rows on ``f``'s days (of ``f``'s departments, if named), in listing order."""
        if f.departments is None:
            lo, hi = bisect_left(self._days, f.start), bisect_right(self._days, f.end)
            return list(self.rows[lo:hi])
        positions: list[int] = []
        for dept in f.departments:
            found = self._departments.get(dept)
            if found is not None:
                where, days = found
                positions += where[bisect_left(days, f.start) : bisect_right(days, f.end)]
        return [self.rows[p] for p in sorted(positions)]


def with_providerlist(ref: reference.Reference, department: Record) -> Record:
    """A department with ``providerlist`` (providers who work there) added."""
    ids = ref.department_providers[department["departmentid"]]
    return dict(department, providerlist=[str(i) for i in ids])


def _replace(row: Appointment, record: Record, **keys: Any) -> Appointment:
    fresh = dataclasses.replace(row, record=record, **keys)
    fresh.render()
    return fresh


def _matches(a: Appointment, f: BookedFilter) -> bool:
    if not f.start <= a.day <= f.end:
        return False
    if a.status == "x" and not f.showcancelled:
        return False
    if f.departments is not None and a.departmentid not in f.departments:
        return False
    if f.providers is not None and a.providerid not in f.providers:
        return False
    if f.types is not None and a.appointmenttypeid not in f.types:
        return False
    if f.statuses is not None and a.status not in f.statuses:
        return False
    if f.patientid is not None and a.patientid != f.patientid:
        return False
    if f.modified_from is not None and a.lastmodified < f.modified_from:
        return False
    return f.modified_to is None or a.lastmodified <= f.modified_to
