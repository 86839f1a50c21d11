"""Wall-clock time to UTC, fast: one zoneinfo lookup per (day, hour, zone), not per value.

A page of appointments names a few dozen days and hours thousands of times; ``zoneinfo`` is
asked once for each hour's UTC offset and the answer applied to every time in it. An hour whose
offset differs at its two ends (the clock changes inside it) is left to ``zoneinfo`` value by
value, so every answer equals ``datetime(..., tzinfo=zone, fold=0).astimezone(UTC)``.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


def wall_to_utc(
    day: date, hour: int, minute: int, second: int, micro: int, zone: ZoneInfo
) -> datetime:
    """The instant of a wall time in ``zone`` (``fold=0``: the first of two, a gap shifted)."""
    offset = hour_offset(day, hour, zone)
    if offset is None:
        local = datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=zone)
        return local.astimezone(UTC)
    return datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC) - offset


@lru_cache(maxsize=8192)
def hour_offset(day: date, hour: int, zone: ZoneInfo) -> timedelta | None:
    """The UTC offset (``fold=0``) of every wall time in this hour, or None if it changes."""
    first = datetime(day.year, day.month, day.day, hour, tzinfo=zone).utcoffset()
    last = datetime(day.year, day.month, day.day, hour, 59, 59, 999999, tzinfo=zone).utcoffset()
    return first if first == last else None


def repeated(moment: datetime, zone: ZoneInfo) -> bool:
    """Whether ``moment`` falls in an hour ``zone``'s clocks show twice (fall-back)."""
    local = moment.astimezone(zone)
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


@lru_cache(maxsize=4096)
def repeated_hour(hour_start: datetime, zone: ZoneInfo) -> bool:
    """:func:`repeated` for a whole UTC hour (valid for zones whose offsets are whole hours)."""
    return repeated(hour_start, zone)


@lru_cache(maxsize=256)
def repeated_hours(year: int, zone: ZoneInfo) -> tuple[datetime, ...]:
    """The UTC hours of ``year`` whose wall times ``zone`` shows twice, as span bounds (start,
    end, start, end …), for a zone whose offsets are whole hours (each UTC hour wholly in or
    out). An hour can only repeat where the offset changes, so only those days are looked at
    hour by hour."""
    day, bounds = timedelta(days=1), list[datetime]()
    start = datetime(year, 1, 1, tzinfo=UTC)
    while start.year == year:
        follow = start + day
        if follow.astimezone(zone).utcoffset() != start.astimezone(zone).utcoffset():
            for hour in range(24):
                begin = start + timedelta(hours=hour)
                if not repeated_hour(begin, zone):
                    continue
                if bounds and bounds[-1] == begin:
                    bounds[-1] = begin + timedelta(hours=1)  # the span goes on
                else:
                    bounds += [begin, begin + timedelta(hours=1)]
        start = follow
    return tuple(bounds)


def in_spans(bounds: tuple[datetime, ...], moment: datetime) -> bool:
    """Whether ``moment`` lies in one of the spans ``bounds`` (start, end …) draw: a bisection,
    an odd position is inside one."""
    return bisect_right(bounds, moment) % 2 == 1


def spans_meet(bounds: tuple[datetime, ...], first: datetime, last: datetime) -> bool:
    """Whether any instant from ``first`` to ``last`` lies in one of the spans ``bounds`` draw."""
    return any(
        start <= last and first < end for start, end in zip(bounds[::2], bounds[1::2], strict=True)
    )
