"""Served appointments indexed by department and day, and the ``/appointments/booked`` filter."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from sandbox.appointments import Appointment
from sandbox.query import BookedFilter

RECENT_FILTERS = 16
"""Answers kept per practice for the current data (see ``PracticeStore.booked``)."""


class DayIndex:
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


def matches(a: Appointment, f: BookedFilter) -> bool:
    """Whether a served row passes every filter of ``f``."""
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
