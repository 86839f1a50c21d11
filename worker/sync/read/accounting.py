"""Whether a multi-department answer accounts for the departments it was asked about.

``/appointments/booked/multipledepartment`` takes ``departmentid`` repeated, and a department
with nothing in the window (or nothing changed) returns no records. A server that reads the
repeated parameter as one value (the first or the last, as many web frameworks do) answers one
department and silently leaves out the rest: moving every department's watermark on such an
answer would lose the others' changes for good, and a reconcile would mark their appointments
deleted. So a department asked for together with others is accounted for by an answer when:

- the answer holds records of it; or
- the listing is trusted for the practice: an answer showed records of two or more departments
  (which a server reading one value never gives), in this unit or, as
  ``source_state.multi_department_verified_at``, within ``EVIDENCE_KEPT``.

Otherwise it is read alone (``/appointments/booked``, the same window and ``startlastmodified``)
in the same unit before its watermark moves or anything of it is marked deleted. An answer
holding records of a department it was not asked for is wrong outright (``AnswerError``).

What it costs: the first read of a practice, every nightly reconcile and every poll that sees
changes in two departments renew the evidence, so polls cost nothing more while it holds. A
practice whose answers show two departments on no day (a server answering one department, or a
practice whose appointments all sit in one department) pays one request per department left out
and window on every poll: what reading per department costs, never less safe. A server that
answers several departments but not all is not caught by this rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from worker.athena.errors import AnswerError
from worker.parse import BadRecord, parse_id
from worker.resources import get_resource as resource_for
from worker.store.letters import BadRecordLetter
from worker.store.sources import record_multi_department_verified
from worker.store.upsert import live_values
from worker.sync.job import Job, Mapper
from worker.sync.pages import MappedPage

log = structlog.get_logger()

EVIDENCE_KEPT = timedelta(days=1)
EVIDENCE_RENEWED = timedelta(hours=1)  # not written on every poll that shows it


@dataclass
class Answer:
    """The departments whose records one answer (all its pages) showed."""

    asked: tuple[str, ...]
    path: str
    practice_id: str
    shown: set[str] = field(default_factory=set)

    def see(self, mapped: MappedPage) -> MappedPage:
        """Note a page's departments (its bad records' too); AnswerError for one not asked."""
        found = {str(row["department_id"]) for row in mapped.rows}
        found.update(d for d in map(_department_of, mapped.bad) if d is not None)
        unasked = found.difference(self.asked)
        if unasked:
            raise AnswerError(
                "the multi-department listing answered departments it was not asked for",
                path=self.path,
                practice_id=self.practice_id,
                detail=f"departments {', '.join(sorted(unasked))}",
            )
        self.shown |= found
        return mapped

    @property
    def several(self) -> bool:
        """Records of two or more departments: the evidence (see the module docstring)."""
        return len(self.shown) > 1

    def left_out(self, *, trusted: bool) -> list[str]:
        """The departments this answer does not account for, to be read alone."""
        if trusted or len(self.asked) < 2:
            return []
        return [d for d in self.asked if d not in self.shown]


def trusted(verified_at: datetime | None, now: datetime, answers: Iterable[Answer]) -> bool:
    """Whether the listing answers for every department asked: the evidence, recent or now."""
    recent = verified_at is not None and now - verified_at < EVIDENCE_KEPT
    return recent or any(a.several for a in answers)


def renewed(verified_at: datetime | None, now: datetime, answers: Iterable[Answer]) -> bool:
    """Whether to record the evidence now: shown by these answers, and the stored one is
    missing or older than ``EVIDENCE_RENEWED``."""
    stale = verified_at is None or now - verified_at >= EVIDENCE_RENEWED
    return stale and any(a.several for a in answers)


def asked(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The departments a listing's parameters ask for (``departmentid``, one or repeated)."""
    value = params["departmentid"]
    return tuple(map(str, value)) if isinstance(value, list | tuple) else (str(value),)


def seeing(answer: Answer | None, mapper: Mapper) -> Mapper:
    """``mapper``, noting each page in ``answer`` (None: nothing to check)."""
    if answer is None:
        return mapper
    see = answer.see
    return lambda records: see(mapper(records))


def left_alone(
    listings: list[dict[str, Any]], answers: list[Answer], trusting: bool
) -> list[dict[str, Any]]:
    """The same question asked alone of each department a listing's answer left out."""
    return [
        {**params, "departmentid": department}
        for params, answer in zip(listings, answers, strict=True)
        for department in answer.left_out(trusted=trusting)
    ]


class Unaccounted:
    """The departments of one answer of a complete read (a reconcile window) that it does not
    account for, decided once it is complete: those it showed nothing of while the listing is
    not trusted, and, trusted or not, those of them holding live rows in the window (marking
    those deleted on this answer alone would be wrong if the listing left them out; a
    department whose appointments all vanished costs one request)."""

    def __init__(
        self,
        job: Job,
        answer: Answer,
        answers: list[Answer],
        verified_at: datetime | None,
        window: Callable[[list[str]], tuple[Any, ...]],
    ) -> None:
        self.job, self.answer, self.answers, self.verified_at = job, answer, answers, verified_at
        self.window = window
        self._decided: list[str] | None = None

    def departments(self) -> list[str]:
        """The departments to read alone."""
        if self._decided is None:
            self._decided = self._decide()
        return self._decided

    def accounted(self) -> tuple[Any, ...]:
        """The scope the answer covers: ``window`` of the departments it accounts for."""
        left = set(self.departments())
        return self.window([d for d in self.answer.asked if d not in left])

    def _decide(self) -> list[str]:
        answer, job = self.answer, self.job
        unshown = [d for d in answer.asked if d not in answer.shown]
        if len(answer.asked) < 2 or not unshown:
            return []
        with job.ctx.sessions() as session:
            holding = live_values(
                session,
                resource_for(job.unit.resource).model,
                "department_id",
                practice_id=job.unit.practice_id,
                scope_filter=self.window(unshown),
            )
        trusting = trusted(self.verified_at, job.ctx.clock(), self.answers)
        return [d for d in unshown if not trusting or d in holding]


def conclude(
    job: Job,
    verified_at: datetime | None,
    answers: list[Answer],
    alone: list[str],
    found: int,
) -> None:
    """After a unit: say which departments were read alone and what they held, and keep the
    evidence in ``source_state``: forgotten when a department read alone held records (the
    listing left them out), recorded when these answers gave it (see ``renewed``)."""
    now = job.ctx.clock()
    if alone:
        _report(job, alone, found)
    if found:
        at = None
    elif renewed(verified_at, now, answers):
        at = now
    else:
        return
    if at == verified_at:
        return
    with job.ctx.sessions.begin() as session:
        record_multi_department_verified(
            session, job.unit.practice_id, job.unit.resource, at=at, now=now
        )


def _report(job: Job, departments: list[str], found: int) -> None:
    shown = ", ".join(sorted(set(departments), key=lambda d: (len(d), d)))
    if not found:
        log.info("sync.multi_department_checked", departments=shown)
        return
    listing = resource_for(job.unit.resource).multi_department_path
    note = f"{listing} showed nothing of departments {shown}: read alone, {found} records"
    job.note = f"{job.note}; {note}" if job.note else note
    log.warning("sync.multi_department_left_out", departments=shown, records=found)


def _department_of(letter: BadRecordLetter) -> str | None:
    record = letter.record
    if not isinstance(record, Mapping):
        return None
    try:
        return parse_id(record.get("departmentid"), "departmentid", required=False)
    except BadRecord:
        return None
