"""Appointments shaped like ``/appointments/booked`` rows (ATHENA_API.md §2.5), deterministic from
the random source, including rows on US DST-change days and, as a fault, malformed rows."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from sandbox import clock
from sandbox.reference import Record, Reference

STATUSES = ("f", "x", "o", "2", "3", "4")
CANCEL_REASONS = (
    ("-5", "PATIENT CANCELLED", False),
    ("1", "NO SHOW", True),
    ("3", "PROVIDER UNAVAILABLE", False),
)
USERS = ("API-15378", "jdoe", "mgarcía", "API-SANDBOX")
# Wall times on DST-change days: 01:30 happens twice on fall-back and 02:00-02:59 never on
# spring-forward, so only times that exist are used.
DST_TIMES = {"spring": ("01:30", "03:00"), "fall": ("00:45", "01:30")}
MALFORMED_KINDS = (
    "missing appointmentid",
    "impossible date",
    "impossible starttime",
    "duration not a number",
    "departmentid is an object",
    "duration is NaN",
    "copay is Infinity",
    "negative duration",
)


@dataclass(slots=True)
class Appointment:
    """A served row plus the keys it is filtered and sorted by (kept apart from the row so that
    malformed rows still filter like the row they were made from)."""

    appointmentid: str
    day: int
    starttime: str
    departmentid: str
    providerid: str
    appointmenttypeid: str
    status: str
    patientid: str
    lastmodified: dt.datetime
    record: Record
    rendered: bytes = b""
    malformed: str | None = None

    def render(self) -> None:
        """Pre-render the row as compact JSON with escaped slashes, like the real API."""
        self.rendered = render_json(self.record)

    @property
    def sort_key(self) -> tuple[int, str, int]:
        """Listing order: date, start time, id."""
        return (self.day, self.starttime, int(self.appointmentid or 0))


def render_json(value: Any) -> bytes:
    """Compact UTF-8 JSON with ``\\/`` for every slash, as athenahealth sends it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("/", "\\/").encode()


def _moment(rng: random.Random, start: dt.date, end: dt.date) -> dt.datetime:
    span = max(1, (end - start).days) * 86400
    return dt.datetime.combine(start, dt.time()) + dt.timedelta(seconds=rng.randrange(span))


def _status_fields(rng: random.Random, row: Record, status: str, when: dt.datetime) -> None:
    user = rng.choice(USERS)
    if status == "x":
        reason_id, reason, noshow = CANCEL_REASONS[rng.randrange(len(CANCEL_REASONS))]
        row.update(
            cancelledby=user,
            cancelleddatetime=clock.fmt_datetime(when),
            cancelreasonid=reason_id,
            cancelreasonname=reason,
            cancelreasonnoshow=noshow,
            cancelreasonslotavailable=not noshow,
        )
    elif status in ("2", "3", "4"):
        start = dt.datetime.strptime(f"{row['date']} {row['starttime']}", "%m/%d/%Y %H:%M")
        row["checkindatetime"] = clock.fmt_datetime(start - dt.timedelta(minutes=7))
        row["encounterid"] = str(rng.randrange(10000, 99999))
        last_touch = start - dt.timedelta(minutes=7)
        if status != "2":
            last_touch = start + dt.timedelta(minutes=32)
            row["checkoutdatetime"] = clock.fmt_datetime(last_touch)
        if status == "4":
            last_touch += dt.timedelta(minutes=rng.randrange(5, 180))
        if last_touch > when:
            row["lastmodified"] = clock.fmt_datetime(last_touch)
    elif status == "f" and rng.random() < 0.3:
        row["appointmentconfirmationid"] = "2"
        row["appointmentconfirmationname"] = "CONFIRMED"


def make_row(
    rng: random.Random,
    ref: Reference,
    *,
    appointment_id: int,
    day: dt.date,
    start: str,
    department: Record,
    status: str,
    modified: dt.datetime,
) -> Appointment:
    """One appointment of ``status`` on ``day`` at ``start`` in ``department``."""
    bookable = [t for t in ref.appointmenttypes if t["patient"] and not t["templatetypeonly"]]
    patient_types = bookable or list(ref.appointmenttypes)
    generic = [t for t in patient_types if t["generic"]] or patient_types
    atype = rng.choice(generic if status == "o" else patient_types)
    dept_id = department["departmentid"]
    provider_id = rng.choice(ref.department_providers[dept_id] or (ref.providers[0]["providerid"],))
    row: Record = {
        "appointmentid": str(appointment_id),
        "date": clock.fmt_date(day),
        "starttime": start,
        "duration": atype["duration"],
        "appointmentstatus": status,
        "appointmenttypeid": str(atype["appointmenttypeid"]),
        "appointmenttype": atype["name"],
        "patientappointmenttypename": atype["patientdisplayname"] or atype["name"],
        "departmentid": dept_id,
        "providerid": str(provider_id),
        "hl7providerid": provider_id,
        "lastmodified": clock.fmt_datetime(modified),
        "lastmodifiedby": rng.choice(USERS),
        "templateappointmentid": str(appointment_id),
        "templateappointmenttypeid": str(atype["appointmenttypeid"]),
        "copay": rng.choice((0, 0, 0, 20, 35)),
        "chargeentrynotrequired": False,
        "coordinatorenterprise": False,
    }
    patient_id = ""
    if status != "o":
        patient_id = str(rng.randrange(1000, 60000))
        scheduled = modified - dt.timedelta(seconds=rng.randrange(30 * 86400))
        row.update(
            patientid=patient_id,
            scheduleddatetime=clock.fmt_datetime(scheduled),
            scheduledby=rng.choice(USERS),
        )
    _status_fields(rng, row, status, modified)
    appointment = Appointment(
        appointmentid=str(appointment_id),
        day=day.toordinal(),
        starttime=start,
        departmentid=dept_id,
        providerid=str(provider_id),
        appointmenttypeid=row["appointmenttypeid"],
        status=status,
        patientid=patient_id,
        lastmodified=dt.datetime.strptime(row["lastmodified"], clock.DATETIME_FORMAT),
        record=row,
    )
    appointment.render()
    return appointment


def _status_for(rng: random.Random, day: dt.date, anchor: dt.date) -> str:
    # Checked in/out and charge entered only happen to past appointments.
    if day >= anchor:
        return rng.choices(("f", "x", "o"), weights=(70, 15, 15))[0]
    return rng.choices(("f", "x", "o", "2", "3", "4"), weights=(5, 12, 8, 5, 20, 50))[0]


def _day_for(
    rng: random.Random, status: str, first: dt.date, days: int, anchor: dt.date
) -> dt.date:
    last = first + dt.timedelta(days=days - 1)
    if status in ("2", "3", "4") and first < anchor:
        last = min(last, anchor - dt.timedelta(days=1))
    elif status == "f" and last > anchor:
        first = max(first, anchor)
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def _dst_plan(ref: Reference, anchor: dt.date) -> list[tuple[dt.date, str, Record]]:
    depts = list(ref.departments)
    chosen = [depts[0]]
    chosen += [d for d in depts if d["doesnotobservedst"]][:1]
    spring_a, spring_b, fall_a, fall_b = clock.dst_days(anchor)
    plan: list[tuple[dt.date, str, Record]] = []
    for day, kind in (
        (spring_a, "spring"),
        (spring_b, "spring"),
        (fall_a, "fall"),
        (fall_b, "fall"),
    ):
        for dept in chosen:
            plan.extend((day, start, dept) for start in DST_TIMES[kind])
    return plan


def generate(
    rng: random.Random, ref: Reference, *, count: int, first: dt.date, days: int, anchor: dt.date
) -> list[Appointment]:
    """``count`` appointments: first the DST-day rows, then ``days`` days from ``first``, with
    every status present. Sorted by date, time, id."""
    next_id = 1_000_000 + rng.randrange(100_000)
    oldest, newest = anchor - dt.timedelta(days=120), anchor - dt.timedelta(days=2)
    rows: list[Appointment] = []
    plan = _dst_plan(ref, anchor)
    for index in range(count):
        if index < len(plan):
            day, start, dept = plan[index]
            status = "f" if day >= anchor else "3"
        else:
            regular = index - len(plan)
            if regular < len(STATUSES):  # every status at least once
                status = STATUSES[regular]
                day = _day_for(rng, status, first, days, anchor)
            else:
                day = first + dt.timedelta(days=rng.randrange(days))
                status = _status_for(rng, day, anchor)
            start = f"{8 + rng.randrange(9):02d}:{rng.choice((0, 15, 30, 45)):02d}"
            dept = ref.departments[rng.randrange(len(ref.departments))]
        modified = _moment(rng, oldest, newest)
        rows.append(
            make_row(
                rng,
                ref,
                appointment_id=next_id,
                day=day,
                start=start,
                department=dept,
                status=status,
                modified=modified,
            )
        )
        next_id += 1 + rng.randrange(3)
    rows.sort(key=lambda a: a.sort_key)
    return rows


def _break(row: Record, kind: str) -> None:
    if kind == "missing appointmentid":
        del row["appointmentid"]
    elif kind == "impossible date":
        row["date"] = f"02/30/{row['date'][-4:]}"
    elif kind == "impossible starttime":
        row["starttime"] = "25:61"
    elif kind == "duration not a number":
        row["duration"] = "abc"
    elif kind == "departmentid is an object":
        row["departmentid"] = {"id": row["departmentid"]}
    elif kind == "duration is NaN":
        row["duration"] = math.nan  # rendered as a bare NaN: not JSON, but some servers send it
    elif kind == "copay is Infinity":
        row["copay"] = math.inf  # in a field no column holds: only raw would carry it
    else:
        row["duration"] = -15


def malformed(rng: random.Random, valid: list[Appointment], count: int) -> list[Appointment]:
    """``count`` broken copies of valid rows, with new ids (``9000001``...), kinds in rotation."""
    result: list[Appointment] = []
    if not valid:
        return result
    for index in range(count):
        source = valid[rng.randrange(len(valid))]
        kind = MALFORMED_KINDS[index % len(MALFORMED_KINDS)]
        new_id = str(9_000_001 + index)
        row = dict(source.record, appointmentid=new_id, templateappointmentid=new_id)
        _break(row, kind)
        broken = Appointment(
            appointmentid=new_id if kind != "missing appointmentid" else "",
            day=source.day,
            starttime=source.starttime,
            departmentid=source.departmentid,
            providerid=source.providerid,
            appointmenttypeid=source.appointmenttypeid,
            status=source.status,
            patientid=source.patientid,
            lastmodified=source.lastmodified,
            record=row,
            malformed=kind,
        )
        broken.render()
        result.append(broken)
    return result
