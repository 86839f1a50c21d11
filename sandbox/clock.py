"""Dates, times and US time-zone facts the sandbox data is built from."""

from __future__ import annotations

import datetime as dt
import threading
from email.utils import format_datetime
from zoneinfo import ZoneInfo

EASTERN = ZoneInfo("US/Eastern")
DATE_FORMAT = "%m/%d/%Y"
DATETIME_FORMAT = "%m/%d/%Y %H:%M:%S"


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    first_sunday = first + dt.timedelta(days=(6 - first.weekday()) % 7)
    return first_sunday + dt.timedelta(weeks=n - 1)


def spring_forward(year: int) -> dt.date:
    """US DST start: second Sunday of March (rules since 2007)."""
    return _nth_sunday(year, 3, 2)


def fall_back(year: int) -> dt.date:
    """US DST end: first Sunday of November (rules since 2007)."""
    return _nth_sunday(year, 11, 1)


def dst_days(anchor: dt.date) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """The spring-forward and fall-back Sundays nearest ``anchor``: (spring before, spring after,
    fall before, fall after), where "before" means on or before the anchor."""
    years = (anchor.year - 1, anchor.year, anchor.year + 1)
    springs = [spring_forward(y) for y in years]
    falls = [fall_back(y) for y in years]
    return (
        max(d for d in springs if d <= anchor),
        min(d for d in springs if d > anchor),
        max(d for d in falls if d <= anchor),
        min(d for d in falls if d > anchor),
    )


def offsets(zone_name: str, on: dt.date) -> tuple[int, int]:
    """(current offset at noon on ``on``, standard offset) in whole hours for a zone."""
    zone = ZoneInfo(zone_name)
    noon = dt.datetime.combine(on, dt.time(12), tzinfo=zone)
    january = dt.datetime(on.year, 1, 15, 12, tzinfo=zone)
    july = dt.datetime(on.year, 7, 15, 12, tzinfo=zone)
    current = noon.utcoffset() or dt.timedelta()
    standard = min(january.utcoffset() or dt.timedelta(), july.utcoffset() or dt.timedelta())
    return int(current.total_seconds() // 3600), int(standard.total_seconds() // 3600)


def observes_dst(zone_name: str, year: int) -> bool:
    """True when the zone's offset differs between January and July."""
    zone = ZoneInfo(zone_name)
    january = dt.datetime(year, 1, 15, 12, tzinfo=zone).utcoffset()
    july = dt.datetime(year, 7, 15, 12, tzinfo=zone).utcoffset()
    return january != july


def eastern_now() -> dt.datetime:
    """The current US/Eastern wall time, naive, to the second."""
    return dt.datetime.now(EASTERN).replace(tzinfo=None, microsecond=0)


class ServerClock:
    """The sandbox's own clock: the machine's, moved forward by however far it was advanced.

    The ``Date`` header of every answer and the ``lastmodified`` a mutation stamps both read it,
    as athenahealth's do from its servers' clock; advancing it stands in for time passing
    during a long read (many windows, 429 waits) without a test having to wait.
    """

    def __init__(self) -> None:
        self._ahead = dt.timedelta()
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> dt.datetime:
        """Move the clock ``seconds`` forward (never back); returns the new time, aware UTC."""
        if not seconds >= 0:
            raise ValueError(f"the clock only moves forward, got {seconds!r} seconds")
        with self._lock:
            self._ahead += dt.timedelta(seconds=seconds)
        return self.now()

    @property
    def ahead_seconds(self) -> float:
        """How far the clock was advanced past the machine's."""
        return self._ahead.total_seconds()

    def now(self) -> dt.datetime:
        """The current time, aware UTC."""
        return dt.datetime.now(dt.UTC) + self._ahead

    def eastern(self) -> dt.datetime:
        """The current US/Eastern wall time, naive, to the second (as ``lastmodified``)."""
        return self.now().astimezone(EASTERN).replace(tzinfo=None, microsecond=0)

    def http_date(self) -> str:
        """The current time as an HTTP ``Date`` header value (GMT)."""
        return format_datetime(self.now(), usegmt=True)


def fmt_date(day: dt.date) -> str:
    """MM/DD/YYYY."""
    return day.strftime(DATE_FORMAT)


def fmt_datetime(moment: dt.datetime) -> str:
    """MM/DD/YYYY HH:MM:SS."""
    return moment.strftime(DATETIME_FORMAT)
