"""Writing dead letters: every failed request and bad record, deduplicated, never in logs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session

from models import DeadLetter
from worker.athena.errors import AthenaError
from worker.jsonsafe import is_non_finite, non_finite_name
from worker.parse import BadRecord, parse_athena_datetime
from worker.store.dialect import insert_for
from worker.units import Unit

log = structlog.get_logger()

SECRET_PARAMS = frozenset({"client_secret", "client_id", "access_token", "token", "password"})
# Classes the periodic replay retries on its own; the others wait for a person.
RETRIABLE_CLASSES = ("retries_exhausted", "retriable", "task_failed")


@dataclass(frozen=True)
class RequestFailure:
    """A request that failed for good, with the unit of work it belonged to."""

    resource: str
    practice_id: str
    path: str | None
    params: Mapping[str, Any]
    error: AthenaError | None
    error_class: str
    message: str
    department_id: str | None = None
    task_name: str | None = None
    task_args: Mapping[str, Any] | None = None
    identity: Mapping[str, Any] | None = None
    """What makes a repeat of this failure the same letter (default: task_args)."""


def clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters safe to store: no secrets, JSON-safe values."""
    return {
        str(k): v if isinstance(v, int | float | bool) or v is None else str(v)
        for k, v in (params or {}).items()
        if str(k).lower() not in SECRET_PARAMS
    }


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _upsert_letter(session: Session, values: dict[str, Any]) -> None:
    """Insert a letter, or bump attempts (and reopen it) if the same failure is already kept."""
    stmt = insert_for(session, DeadLetter).values(**values)
    table = DeadLetter.__table__
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.dedup_key],
        set_={
            "attempts": table.c.attempts + 1,
            "last_failed_at": stmt.excluded.last_failed_at,
            "http_status": stmt.excluded.http_status,
            "api_error": stmt.excluded.api_error,
            "error_message": stmt.excluded.error_message,
            "record": stmt.excluded.record,
            "params": stmt.excluded.params,
            "task_args": stmt.excluded.task_args,
            "sync_run_id": stmt.excluded.sync_run_id,
            "state": sa.case(
                (table.c.state == "discarded", table.c.state), else_=sa.literal("open")
            ),
            "resolved_at": sa.case(
                (table.c.state == "discarded", table.c.resolved_at), else_=sa.null()
            ),
        },
    )
    session.execute(stmt)


# Every class a request letter can have (the runner's and the Celery tasks').
REQUEST_CLASSES = (
    "client_error",
    "auth",
    "paging",
    "retries_exhausted",
    "retriable",
    "internal_error",
    "task_failed",
)


def request_key(
    resource: str,
    practice_id: str | None,
    department_id: str | None,
    identity: Any,
    error_class: str,
) -> str:
    """The dedup key of a request letter."""
    return _digest("request", resource, practice_id, department_id, identity, error_class)


def resolve_unit_letters(session: Session, unit: Unit, *, run_id: int, now: datetime) -> int:
    """A unit that just succeeded resolves the open request letters it left behind."""
    identities = [(c, unit.identity()) for c in REQUEST_CLASSES if c != "task_failed"]
    identities.append(("task_failed", {"unit": unit.identity()}))
    keys = [
        request_key(unit.resource, unit.practice_id, unit.department_id, identity, error_class)
        for error_class, identity in identities
    ]
    result = session.execute(
        sa.update(DeadLetter)
        .where(DeadLetter.dedup_key.in_(keys), DeadLetter.state.in_(("open", "replayed")))
        .values(
            state="resolved", resolved_at=now, resolution_note=f"unit succeeded in run {run_id}"
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def add_request_letter(
    session: Session, failure: RequestFailure, *, run_id: int | None, now: datetime
) -> None:
    """Keep a failed request (or task) with enough context to replay its unit of work."""
    error = failure.error
    params = clean_params(failure.params)
    # The unit of work (task_args) identifies a failure, not the exact query or status: an
    # incremental unit's startlastmodified moves between attempts, a 502 may follow a 503, and
    # each attempt must bump one letter.
    identity = failure.identity or failure.task_args or {"path": failure.path, "params": params}
    key = request_key(
        failure.resource,
        failure.practice_id,
        failure.department_id,
        identity,
        failure.error_class,
    )
    _upsert_letter(
        session,
        {
            "kind": "request",
            "resource": failure.resource,
            "practice_id": failure.practice_id,
            "department_id": failure.department_id,
            "path": failure.path,
            "params": params,
            "http_status": error.status if error else None,
            "api_error": error.api_error if error else None,
            "error_class": failure.error_class,
            "error_message": failure.message[:2000],
            "record": None,
            "record_id": None,
            "attempts": 1,
            "first_failed_at": now,
            "last_failed_at": now,
            "state": "open",
            "sync_run_id": run_id,
            "task_name": failure.task_name,
            "task_args": dict(failure.task_args) if failure.task_args else None,
            "dedup_key": key,
        },
    )
    log.warning(
        "sync.request_dead_lettered",
        resource=failure.resource,
        practice_id=failure.practice_id,
        department_id=failure.department_id,
        path=failure.path,
        status=error.status if error else None,
        error_class=failure.error_class,
    )


@dataclass(frozen=True)
class BadRecordLetter:
    """A record that failed validation or mapping, kept as received."""

    record: Any
    record_id: str | None
    reason: str
    field: str | None = None


def add_record_letters(
    session: Session,
    letters: Iterable[BadRecordLetter],
    *,
    resource: str,
    practice_id: str,
    department_id: str | None,
    path: str | None,
    run_id: int | None,
    now: datetime,
    department_field: str | None = None,
) -> int:
    """Keep bad records (one statement each; bad records are rare). Returns how many.
    ``department_field``: for a unit reading many departments at once (``department_id``
    None), the record's field naming its department, so each letter counts against that
    department (freshness) rather than against all of them."""
    count = 0
    for letter in letters:
        identity = letter.record_id if letter.record_id is not None else _digest(letter.record)
        department = department_id
        if department is None and department_field is not None:
            department = _record_department(letter.record, department_field)
        _upsert_letter(
            session,
            {
                "kind": "record",
                "resource": resource,
                "practice_id": practice_id,
                "department_id": department,
                "path": path,
                "params": None,
                "http_status": None,
                "api_error": None,
                "error_class": "bad_record",
                "error_message": letter.reason[:2000],
                "record": _as_object(letter.record),
                "record_id": _storable(letter.record_id),
                "attempts": 1,
                "first_failed_at": now,
                "last_failed_at": now,
                "state": "open",
                "sync_run_id": run_id,
                "dedup_key": _digest("record", resource, practice_id, identity, letter.reason),
            },
        )
        count += 1
        log.warning(
            "sync.record_dead_lettered",
            resource=resource,
            practice_id=practice_id,
            record_id=letter.record_id,
            field=letter.field,
        )
    return count


def _record_department(record: Any, field: str) -> str | None:
    """The department a bad record names, if it names one plainly (an id of digits)."""
    value = record.get(field) if isinstance(record, dict) else None
    if type(value) is int and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        return value.strip()
    return None


# NUL, and surrogate code points (in a str always lone ones: a pair decodes to one code point).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """The value as Postgres text and JSONB take it: NUL characters and lone surrogates made
    U+FFFD, NaN/Infinity spelled as text ("NaN"), so a letter is never refused like its record."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if is_non_finite(value):
        return non_finite_name(value)
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _as_object(record: Any) -> dict[str, Any]:
    """Records are stored as JSON objects; a non-object record is wrapped, not dropped."""
    stored = _storable(record)
    return stored if isinstance(stored, dict) else {"value": stored}


def resolve_record_letters(
    session: Session,
    *,
    resource: str,
    practice_id: str,
    landed: Mapping[str, datetime | None],
    guard_field: str | None = None,
    now: datetime,
) -> int:
    """Records that now map cleanly resolve their open letters, but only with a row at least as
    new as the copy a letter holds (one or two statements per page). ``landed``: each clean id
    with the guard time of its row (None: unknown); ``guard_field``: the record's field behind
    that time (None: the resource has no guard, any clean copy settles). A letter whose copy has
    a time is settled only by a row whose time is known and not older; one whose copy's time is
    unknown, by any clean copy."""
    if not landed:
        return 0
    letters = sa.and_(
        DeadLetter.kind == "record",
        DeadLetter.state == "open",
        DeadLetter.resource == resource,
        DeadLetter.practice_id == practice_id,
        DeadLetter.record_id.in_(list(landed)),
    )
    if guard_field is not None:
        found = session.execute(
            sa.select(DeadLetter.id, DeadLetter.record_id, DeadLetter.record).where(letters)
        )
        settled = [
            letter_id
            for letter_id, record_id, record in found
            if _at_least_as_new(landed.get(record_id), _stamp(record, guard_field))
        ]
        if not settled:
            return 0
        letters = DeadLetter.id.in_(settled)
    result = session.execute(
        sa.update(DeadLetter)
        .where(letters)
        .values(state="resolved", resolved_at=now, resolution_note="record synced cleanly")
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _stamp(record: Any, field: str) -> datetime | None:
    """The guard time of a letter's stored copy, or None when it has none that parses."""
    value = record.get(field) if isinstance(record, dict) else None
    try:
        return parse_athena_datetime(value, field)
    except BadRecord:
        return None


def _at_least_as_new(row: datetime | None, copy: datetime | None) -> bool:
    return copy is None or (row is not None and row >= copy)


def open_counts(session: Session) -> dict[tuple[str, str | None], int]:
    """Open letters per (resource, practice)."""
    rows = session.execute(
        sa.select(DeadLetter.resource, DeadLetter.practice_id, sa.func.count())
        .where(DeadLetter.state.in_(("open", "replayed")))
        .group_by(DeadLetter.resource, DeadLetter.practice_id)
    )
    return {(resource, practice): int(n) for resource, practice, n in rows}
