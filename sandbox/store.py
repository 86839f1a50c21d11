"""One practice's data: reference records, appointments, malformed rows, and their changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
from collections.abc import Callable
from typing import Any

from sandbox import appointments as appts
from sandbox import clock, reference, visits
from sandbox.appointments import Appointment
from sandbox.config import SandboxConfig
from sandbox.feed import ChangeFeed
from sandbox.index import RECENT_FILTERS, DayIndex, matches
from sandbox.query import BookedFilter
from sandbox.reference import Record

SANDBOX_USER = "API-SANDBOX"


@dataclasses.dataclass(frozen=True)
class Mutation:
    """How many appointments to change in one ``mutate`` call. ``checkin``, ``checkout`` and
    ``cancel_past`` change visits at least ``past_days`` before the anchor date."""

    cancel: int = 0
    modify: int = 0
    delete: int = 0
    add: int = 0
    checkin: int = 0
    checkout: int = 0
    cancel_past: int = 0
    past_days: int = 14
    seed: int | None = None


class PracticeStore:
    """Data of one practice. Readers see an immutable snapshot (``served``); writers replace it."""

    def __init__(
        self,
        practice_id: str,
        config: SandboxConfig,
        *,
        empty: bool = False,
        server_clock: clock.ServerClock | None = None,
    ) -> None:
        self.practice_id = practice_id
        self._config = config
        server_clock = server_clock or clock.ServerClock()
        # The server's clock, Eastern wall time (stamps `lastmodified`).
        self._eastern_now: Callable[[], dt.datetime] = server_clock.eastern
        self.feed = ChangeFeed(
            config.subscription_activation_seconds,
            server_clock.now,
            server_clock.eastern,
            retention_seconds=config.processed_retention_seconds,
        )
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
        self._index = DayIndex(tuple(rows), by_department)
        self._recent: dict[tuple[int, BookedFilter], list[Appointment]] = {}
        self.served = self._index.rows

    def set_malformed(self, count: int, seed: int) -> None:
        """Serve ``count`` malformed rows (made from the fault seed) alongside the valid ones;
        a subscribed feed serves them too, as changes."""
        with self._lock:
            rng = random.Random(f"{seed}:{self.practice_id}:malformed")
            self._malformed = appts.malformed(rng, self._valid, count)
            self._publish()
            self.feed.record("UpdateAppointment", self._malformed)

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
        rows = [a for a in index.candidates(f) if matches(a, f)]
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
        """Cancel, modify, change past visits, delete and add appointments; report exactly what
        changed. Each change is queued in the feed under its event (a deletion under none)."""
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
            done = self._change(rng, rows, change, now)
            self._deleted.extend(done["deleted"])
            self._valid = list(rows.values())
            self._publish()
            for event, ids in _events(done).items():
                self.feed.record(event, [rows[i] for i in ids])
        return {"practiceid": self.practice_id, "lastmodified": clock.fmt_datetime(now), **done}

    def _change(
        self, rng: random.Random, rows: dict[str, Appointment], change: Mutation, now: dt.datetime
    ) -> dict[str, Any]:
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
        past = self._past_visits(rng, rows, change, now, touched)
        rest = sorted(set(rows) - touched)
        deleted = rng.sample(rest, min(change.delete, len(rest)))
        for appointment_id in deleted:
            del rows[appointment_id]
        return {
            "cancelled": sorted(cancelled),
            "modified": sorted(modified, key=lambda m: str(m["appointmentid"])),
            **past,
            "deleted": sorted(deleted),
            "added": self._add(rng, rows, change.add, now),
        }

    def _past_visits(
        self,
        rng: random.Random,
        rows: dict[str, Appointment],
        change: Mutation,
        now: dt.datetime,
        touched: set[str],
    ) -> dict[str, list[str]]:
        """Check-ins, check-outs and cancellations of visits ``past_days`` or more ago."""
        before = (self._config.anchor_date - dt.timedelta(days=change.past_days)).toordinal()
        done: dict[str, list[str]] = {}
        for kind, (statuses, _, _) in visits.KINDS.items():
            count = getattr(change, kind)
            pool = [i for i in visits.candidates(rows, statuses, before) if i not in touched]
            chosen = sorted(rng.sample(pool, min(count, len(pool)))) if count else []
            for appointment_id in chosen:
                rows[appointment_id] = visits.apply(
                    kind, rng, rows[appointment_id], now, SANDBOX_USER, _replace
                )
            touched.update(chosen)
            done[kind] = chosen
        return done

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


def with_providerlist(ref: reference.Reference, department: Record) -> Record:
    """A department with ``providerlist`` (providers who work there) added."""
    ids = ref.department_providers[department["departmentid"]]
    return dict(department, providerlist=[str(i) for i in ids])


def _events(done: dict[str, Any]) -> dict[str, list[str]]:
    """The feed event of each change a mutation made (deletions are never queued)."""
    events = {
        "CancelAppointment": done["cancelled"] + done["cancel_past"],
        "UpdateAppointment": [m["appointmentid"] for m in done["modified"]],
        "ScheduleAppointment": done["added"],
    }
    for kind, (_, _, event) in visits.KINDS.items():
        if event not in events:
            events[event] = done[kind]
    return events


def _replace(row: Appointment, record: Record, **keys: Any) -> Appointment:
    fresh = dataclasses.replace(row, record=record, **keys)
    fresh.render()
    return fresh
