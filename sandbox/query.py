"""Query parameters, their validation (with the real 400 bodies) and the paging envelope."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from sandbox.appointments import render_json

_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_DATETIME = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})$")
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


class ApiError(Exception):
    """An answer other than 200 with an athenahealth-style JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: Sequence[tuple[str, str]] = ()):
        super().__init__(status, body.get("error"))
        self.status = status
        self.body = body
        self.headers = tuple(headers)


def missing(*fields: str) -> ApiError:
    """400 for absent required parameters, exactly as athenahealth words it."""
    return ApiError(
        400, {"missingfields": list(fields), "error": "Additional fields are required."}
    )


def invalid(field: str, expected: str) -> ApiError:
    """400 for a parameter that is present but malformed."""
    return ApiError(
        400,
        {"error": f"Invalid value for {field}.", "detailedmessage": expected, "fields": [field]},
    )


class Params:
    """The request's query: case-insensitive lookup (``next`` links echo names in upper case)."""

    def __init__(self, query: str) -> None:
        self.pairs = parse_qsl(query, keep_blank_values=True)
        self.values = {key.lower(): value for key, value in self.pairs}

    def get(self, name: str) -> str | None:
        """The last value sent for ``name`` (any case); blank counts as absent."""
        value = self.values.get(name)
        return value if value not in (None, "") else None

    def flag(self, name: str, default: bool) -> bool:
        """A boolean: true/false/1/0, any case."""
        raw = self.get(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise invalid(name, "Expected true or false.")

    def id_set(self, name: str) -> frozenset[str] | None:
        """A comma-separated list of ids, or None when absent."""
        raw = self.get(name)
        if raw is None:
            return None
        return frozenset(part.strip() for part in raw.split(",") if part.strip())

    def all_ids(self, name: str) -> frozenset[str] | None:
        """Every id sent for ``name``, the parameter repeated and/or comma-separated; None when
        absent (``/appointments/booked/multipledepartment`` repeats ``departmentid``)."""
        ids = frozenset(
            part.strip()
            for key, value in self.pairs
            if key.lower() == name
            for part in value.split(",")
            if part.strip()
        )
        return ids or None

    def first_id(self, name: str) -> frozenset[str] | None:
        """The first id sent for ``name`` alone (what a server reading a repeated parameter as
        one value answers); None when absent."""
        for key, value in self.pairs:
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if key.lower() == name and parts:
                return frozenset(parts[:1])
        return None

    def date(self, name: str) -> dt.date | None:
        """An MM/DD/YYYY date, or None when absent."""
        raw = self.get(name)
        if raw is None:
            return None
        match = _DATE.match(raw)
        try:
            if not match:
                raise ValueError(raw)
            month, day, year = (int(g) for g in match.groups())
            return dt.date(year, month, day)
        except ValueError:
            raise invalid(name, "Expected a date in MM/DD/YYYY format.") from None

    def datetime(self, name: str) -> dt.datetime | None:
        """An MM/DD/YYYY HH:MM:SS datetime, or None when absent."""
        raw = self.get(name)
        if raw is None:
            return None
        match = _DATETIME.match(raw)
        try:
            if not match:
                raise ValueError(raw)
            month, day, year, hour, minute, second = (int(g) for g in match.groups())
            return dt.datetime(year, month, day, hour, minute, second)
        except ValueError:
            raise invalid(name, "Expected a datetime in MM/DD/YYYY HH:MM:SS format.") from None

    def paging(self, default_limit: int, max_limit: int) -> tuple[int, int]:
        """(limit, offset). A limit above the maximum is clamped to it."""
        limit, offset = default_limit, 0
        raw_limit, raw_offset = self.get("limit"), self.get("offset")
        if raw_limit is not None:
            if not raw_limit.isdigit() or int(raw_limit) < 1:
                raise invalid("limit", "Expected a positive whole number.")
            limit = min(int(raw_limit), max_limit)
        if raw_offset is not None:
            if not raw_offset.isdigit():
                raise invalid("offset", "Expected a whole number, 0 or more.")
            offset = int(raw_offset)
        return limit, offset

    def echo(self, offset: int) -> str:
        """The query of a ``next``/``previous`` link: own params in UPPER case, URL-encoded,
        sorted, without LIMIT and OFFSET, then a lower-case ``offset``."""
        parts = [
            f"{quote(key.upper(), safe='')}={quote(value, safe='')}"
            for key, value in sorted(self.pairs, key=lambda kv: kv[0].upper())
            if key.lower() not in ("limit", "offset")
        ]
        parts.append(f"offset={offset}")
        return "&".join(parts)

    def normalized(self) -> tuple[tuple[str, str], ...]:
        """A cache key for the query: names lowered, pairs sorted."""
        return tuple(sorted((key.lower(), value) for key, value in self.pairs))


@dataclass(frozen=True)
class BookedFilter:
    """The filters of ``/appointments/booked``, validated."""

    start: int
    end: int
    departments: frozenset[str] | None
    providers: frozenset[str] | None
    types: frozenset[str] | None
    statuses: frozenset[str] | None
    patientid: str | None
    showcancelled: bool
    modified_from: dt.datetime | None
    modified_to: dt.datetime | None


def booked_filter(
    params: Params, *, multiple: bool = False, first_only: bool = False
) -> BookedFilter:
    """Validate ``/appointments/booked`` params: startdate/enddate required (MM/DD/YYYY,
    inclusive); endlastmodified requires startlastmodified. ``multiple``
    (``/multipledepartment``): ``departmentid`` is required and every value sent counts, or
    only the first with ``first_only`` (the ``multi_department_first_only`` fault)."""
    required = ("startdate", "enddate", "departmentid") if multiple else ("startdate", "enddate")
    absent = [name for name in required if params.get(name) is None]
    if absent:
        raise missing(*absent)
    start, end = params.date("startdate"), params.date("enddate")
    if start is None or end is None:  # unreachable: both were checked present above
        raise missing("startdate", "enddate")
    if end < start:
        raise invalid("enddate", "The end date must not be before the start date.")
    modified_from = params.datetime("startlastmodified")
    modified_to = params.datetime("endlastmodified")
    if modified_to is not None and modified_from is None:
        raise missing("startlastmodified")
    return BookedFilter(
        start=start.toordinal(),
        end=end.toordinal(),
        departments=_departments(params, multiple=multiple, first_only=first_only),
        providers=params.id_set("providerid"),
        types=params.id_set("appointmenttypeid"),
        statuses=params.id_set("appointmentstatus"),
        patientid=params.get("patientid"),
        showcancelled=params.flag("showcancelled", False),
        modified_from=modified_from,
        modified_to=modified_to,
    )


def _departments(params: Params, *, multiple: bool, first_only: bool) -> frozenset[str] | None:
    if not multiple:
        return params.id_set("departmentid")
    return params.first_id("departmentid") if first_only else params.all_ids("departmentid")


def page_body(
    collection: str,
    rendered: Sequence[bytes],
    *,
    offset: int,
    limit: int,
    base: str,
    params: Params,
) -> bytes:
    """The list envelope: totalcount, next/previous links (relative, with ``/v1/{practiceid}``)
    when there are more rows after/before this page, then the page's rows."""
    total = len(rendered)
    head = [b'{"totalcount":%d' % total]
    if offset + limit < total:
        head.append(b',"next":' + render_json(f"{base}?{params.echo(offset + limit)}"))
    if offset > 0:
        previous = max(0, offset - limit)
        head.append(b',"previous":' + render_json(f"{base}?{params.echo(previous)}"))
    head.append(b',"' + collection.encode() + b'":[')
    head.append(b",".join(rendered[offset : offset + limit]))
    head.append(b"]}")
    return b"".join(head)
