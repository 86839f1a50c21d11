"""Pure parsing helpers for athenahealth payloads, and ``BadRecord``, the one error they raise.

The API mixes types for the same field (ids as ints or strings, booleans as ``true`` or
``"true"``), writes dates as ``MM/DD/YYYY`` (``01/01/0001`` meaning "none"), times as ``HH:MM``
and audit timestamps as zoneless ``MM/DD/YYYY HH:MM:SS`` in US/Eastern. Every helper takes the
field name so a failure can say which field was wrong. Messages name the field and the kind of
problem, never the value (values can be patient data).

Time zones: wall-clock times are turned into instants with ``zoneinfo``. An ambiguous time on a
fall-back day (01:30 happens twice) resolves to the *first* occurrence (``fold=0``, daylight
time); a nonexistent time on a spring-forward day (02:30 never happens) is shifted forward by the
gap, like a wall clock would be (02:30 EST == 03:30 EDT).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.jsonsafe import LONE_SURROGATE, is_non_finite, non_finite_name
from worker.wallclock import (
    hour_offset,
    in_spans,
    repeated,
    repeated_hours,
    spans_meet,
    wall_to_utc,
)

EASTERN = "US/Eastern"
SENTINEL_DATE = "01/01/0001"
# No schedule or audit trail holds a year outside these: such a date is a typo'd year or a
# "never" sentinel like 12/31/9999 (which, as a lastmodified, would block every later change
# through the upsert guard, and near year 9999 does not even convert to UTC).
EARLIEST_YEAR, LATEST_YEAR = 1900, 2100

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_HHMM = re.compile(r"(\d{1,2}):(\d{2})")
_DATETIME = re.compile(r"(\d{1,2}/\d{1,2}/\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?")
_INT = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "t", "y", "yes", "1"})
_FALSE = frozenset({"false", "f", "n", "no", "0"})


class BadRecord(ValueError):
    """A record (or one field of it) cannot be mapped; ``reason`` says why, ``field`` where."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _required(field: str, required: bool) -> None:
    if required:
        raise BadRecord(f"{field} is missing", field)


def _storable_text(text: str, field: str) -> str:
    # A lone surrogate (only the fallback decoder lets one through) cannot be sent as UTF-8.
    if LONE_SURROGATE.search(text) is None:
        return text
    raise BadRecord(f"{field} holds a lone surrogate, text UTF-8 cannot encode", field)


def _refuse_non_finite(value: Any, field: str, what: str) -> None:
    # NaN is a float, so it would otherwise read as a fraction, or as the text "nan".
    if is_non_finite(value):
        raise BadRecord(f"{field} is {non_finite_name(value)}, not {what}", field)


@overload
def parse_id(value: Any, field: str, *, required: Literal[True] = ...) -> str: ...
@overload
def parse_id(value: Any, field: str, *, required: bool) -> str | None: ...
def parse_id(value: Any, field: str, *, required: bool = True) -> str | None:
    """An id as text: accepts ints and strings (stripped); rejects bools, fractions, objects."""
    if type(value) is str and (text := value.strip()):  # the common cases, first
        return text if text.isascii() else _storable_text(text, field)
    if type(value) is int:
        return str(value)
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    if isinstance(value, bool):
        raise BadRecord(f"{field} is a boolean, not an id", field)
    if isinstance(value, int):
        return str(value)
    _refuse_non_finite(value, field, "an id")
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        raise BadRecord(f"{field} is a fractional number, not an id", field)
    if isinstance(value, str):
        return _storable_text(value.strip(), field)
    raise BadRecord(f"{field} must be an id, got {_type_name(value)}", field)


def parse_str(value: Any, field: str, *, required: bool = False) -> str | None:
    """Free text (names, codes); numbers become text; blank becomes None."""
    if type(value) is str and (text := value.strip()):
        return text if text.isascii() else _storable_text(text, field)
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    if isinstance(value, str):
        return _storable_text(value.strip(), field)
    _refuse_non_finite(value, field, "text")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise BadRecord(f"{field} must be text, got {_type_name(value)}", field)


def parse_str_list(value: Any, field: str) -> list[str] | None:
    """A list of ids/text (``otherprovideridlist``); each item as text."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRecord(f"{field} must be a list, got {_type_name(value)}", field)
    items = [parse_id(item, field, required=False) for item in value]
    return [item for item in items if item is not None]


def parse_bool(value: Any, field: str, *, required: bool = False) -> bool | None:
    """true/false in any of the API's spellings: JSON booleans, "true"/"false", "Y"/"N", 1/0."""
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise BadRecord(f"{field} is not a boolean", field)


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def parse_int(value: Any, field: str, *, required: bool = False) -> int | None:
    """A whole number given as a JSON number or a numeric string."""
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    if isinstance(value, bool):
        raise BadRecord(f"{field} is a boolean, not a whole number", field)
    _refuse_non_finite(value, field, "a whole number")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None:
        raise BadRecord(f"{field} is not a whole number", field)
    if not INT32_MIN <= number <= INT32_MAX:
        raise BadRecord(f"{field} is out of range for a whole-number column", field)
    return number


# Values that cannot be true (README, "Bad records"). athenaOne books by the day, so no slot is
# longer than one (0 is kept: a zero-length slot is odd but not impossible).
MAX_DURATION_MINUTES = 24 * 60


def parse_duration(value: Any, field: str) -> int | None:
    """Minutes, from 0 to a whole day; a negative or longer duration is refused."""
    minutes = parse_int(value, field)
    if minutes is not None and not 0 <= minutes <= MAX_DURATION_MINUTES:
        problem = "negative" if minutes < 0 else "longer than a day"
        raise BadRecord(f"{field} is {problem}", field)
    return minutes


def parse_float(value: Any, field: str, *, required: bool = False) -> float | None:
    """A number given as a JSON number or a numeric string (latitude, longitude)."""
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise BadRecord(f"{field} is not a number", field)
    return number


@overload
def parse_date(value: Any, field: str, *, required: Literal[True]) -> date: ...
@overload
def parse_date(value: Any, field: str, *, required: bool = ...) -> date | None: ...
def parse_date(value: Any, field: str, *, required: bool = False) -> date | None:
    """``MM/DD/YYYY`` to a date; the sentinel ``01/01/0001`` means none; a year outside
    1900-2100 is refused."""
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{field} is not a MM/DD/YYYY date", field)
    day = _calendar_day(value)
    if isinstance(day, str):
        raise BadRecord(f"{field} {day}", field)
    if day is None:
        _required(field, required)
    return day


@lru_cache(maxsize=4096)
def _calendar_day(value: str) -> date | str | None:
    """The date a ``MM/DD/YYYY`` text names, None for the sentinel, or what is wrong with it
    (cached: a page repeats a few dozen dates a thousand times)."""
    text = value.strip()
    if text == SENTINEL_DATE:
        return None
    match = _DATE.fullmatch(text)
    if not match:
        return "is not a MM/DD/YYYY date"
    month, day, year = (int(part) for part in match.groups())
    try:
        found = date(year, month, day)
    except ValueError:
        return "is an impossible date"
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        return f"is outside the years {EARLIEST_YEAR}-{LATEST_YEAR}"
    return found


@overload
def parse_hhmm(value: Any, field: str, *, required: Literal[True]) -> time: ...
@overload
def parse_hhmm(value: Any, field: str, *, required: bool = ...) -> time | None: ...
def parse_hhmm(value: Any, field: str, *, required: bool = False) -> time | None:
    """``HH:MM`` (24 hour) to a time."""
    if value is None or _missing(value):
        if required:
            _required(field, required)
        return None
    clock = _clock_time(value) if isinstance(value, str) else "is not an HH:MM time"
    if isinstance(clock, str):
        raise BadRecord(f"{field} {clock}", field)
    return clock


@lru_cache(maxsize=4096)
def _clock_time(value: str) -> time | str:
    """The time an ``HH:MM`` text names, or what is wrong with it (cached, like dates)."""
    match = _HHMM.fullmatch(value.strip())
    if not match:
        return "is not an HH:MM time"
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        return "is an impossible time"
    return time(hour, minute)


@lru_cache(maxsize=256)
def zone_info(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name (``US/Eastern``, ``America/Phoenix``) or BadRecord."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise BadRecord("unknown time zone", "timezonename") from None


def local_to_utc(day: date, clock: time, zone_name: str) -> datetime:
    """Wall-clock ``day`` + ``clock`` in ``zone_name`` as an aware UTC datetime (see module doc)."""
    if not isinstance(zone_name, str) or not zone_name.strip():
        raise BadRecord("time zone is missing", "timezonename")
    zone = zone_info(zone_name.strip())
    return wall_to_utc(day, clock.hour, clock.minute, clock.second, clock.microsecond, zone)


def parse_athena_datetime(
    value: Any, field: str, *, zone: str = EASTERN, required: bool = False
) -> datetime | None:
    """``MM/DD/YYYY HH:MM[:SS]`` in ``zone`` (US/Eastern for audit times) to aware UTC."""
    if type(value) is str and len(value) == 19 and zone is EASTERN:
        found = eastern_fast(value)
        if found is not None:
            return found
    text = value.strip() if isinstance(value, str) else None
    if not text:
        if value is None or text == "":
            if required:
                _required(field, required)
            return None
        raise BadRecord(f"{field} is not a MM/DD/YYYY HH:MM:SS timestamp", field)
    match = _DATETIME.fullmatch(text)
    if not match:
        raise BadRecord(f"{field} is not a MM/DD/YYYY HH:MM:SS timestamp", field)
    day = _calendar_day(match[1])
    if day is None or isinstance(day, str):
        parse_date(match[1], field, required=required)  # raises what is wrong with it
        return None  # the "none" sentinel
    hour, minute, second = int(match[2]), int(match[3]), int(match[4] or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise BadRecord(f"{field} is an impossible time", field)
    if not isinstance(zone, str) or not zone.strip():
        raise BadRecord("time zone is missing", "timezonename")
    return wall_to_utc(day, hour, minute, second, 0, zone_info(zone.strip()))


def eastern_fast(text: str) -> datetime | None:
    """The common ``MM/DD/YYYY HH:MM:SS`` in US/Eastern (five per appointment), or None to take
    the careful path above, which also says what is wrong. The hour's instant is looked up once
    (cached); Eastern's offsets are whole hours, so minutes and seconds are added as they are."""
    start = _eastern_hour(text[:13])
    past = _MINUTES_SECONDS.get(text[13:])
    if start is None or past is None:
        return None
    return start + past


# ":MM:SS" -> its timedelta, for every valid one: looking a value up also checks it.
_MINUTES_SECONDS = {
    f":{m:02d}:{s:02d}": timedelta(minutes=m, seconds=s) for m in range(60) for s in range(60)
}


@lru_cache(maxsize=8192)
def _eastern_hour(prefix: str) -> datetime | None:
    """The instant (UTC) a ``MM/DD/YYYY HH`` Eastern wall hour starts, or None when it needs
    the careful path (not that shape, the "none" date, a year out of range, a clock change
    inside the hour)."""
    hour = prefix[11:]
    if prefix[10] != " " or not (hour.isdigit() and hour.isascii()) or int(hour) > 23:
        return None
    day = _calendar_day(prefix[:10]) if _DATE.fullmatch(prefix[:10]) else None
    if not isinstance(day, date):
        return None
    offset = hour_offset(day, int(hour), zone_info(EASTERN))
    if offset is None or offset % timedelta(hours=1):
        return None
    return datetime(day.year, day.month, day.day, int(hour), tzinfo=UTC) - offset


def to_eastern_param(moment: datetime) -> str:
    """An aware datetime as the API's ``MM/DD/YYYY HH:MM:SS`` US/Eastern query value.

    The API compares wall-clock times. In the hour that repeats when daylight time ends, a wall
    time names two instants, and "since 01:45" would skip changes made at 01:10 the second
    time round; so a moment in the first pass of that hour is sent an hour earlier (a lower
    bound never skips). A moment in the second pass is exact: every later change is at a later
    wall time.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("to_eastern_param needs an aware datetime")
    local = moment.astimezone(zone_info(EASTERN))
    if local.fold == 0 and local.replace(fold=1).utcoffset() != local.utcoffset():
        local = (moment - timedelta(hours=1)).astimezone(zone_info(EASTERN))
    return local.strftime("%m/%d/%Y %H:%M:%S")


# Standard UTC offset (hours) of the US zones athenahealth practices sit in: with DST, without.
_US_ZONES: dict[tuple[int, bool], str] = {
    (-5, True): "America/New_York",
    (-6, True): "America/Chicago",
    (-7, True): "America/Denver",
    (-7, False): "America/Phoenix",
    (-8, True): "America/Los_Angeles",
    (-9, True): "America/Anchorage",
    (-10, False): "Pacific/Honolulu",
    (-4, False): "America/Puerto_Rico",
}


def zone_from_offset(standard_offset: int | None, observes_dst: bool) -> str | None:
    """A US zone for a department that sends ``timezoneoffset`` but no usable ``timezonename``."""
    if standard_offset is None:
        return None
    return _US_ZONES.get((standard_offset, observes_dst))


def ambiguous_eastern(moment: datetime | None) -> bool:
    """Whether an instant read from a zoneless Eastern wall time could be either of two (the
    hour that repeats when daylight time ends; such wall times are read as the first)."""
    if moment is None:
        return False
    if moment.tzinfo is UTC and 1900 <= moment.year < 9999:
        # Eastern's offsets are whole hours since 1883: the year's repeated UTC hours, looked
        # up (this runs for every appointment written).
        return in_spans(repeated_hours(moment.year, zone_info(EASTERN)), moment)
    return repeated(moment, zone_info(EASTERN))


def ambiguous_eastern_between(first: datetime, last: datetime) -> bool:
    """Whether any instant from ``first`` to ``last`` may be ambiguous (see above): a page whose
    guard times all lie outside the repeated hours needs no look at each of them."""
    if not (first.tzinfo is UTC and last.tzinfo is UTC and 1900 <= first.year <= last.year < 9999):
        return True  # the careful answer: look at each
    return any(
        spans_meet(repeated_hours(year, zone_info(EASTERN)), first, last)
        for year in range(first.year, last.year + 1)
    )
