"""Wall-clock time to UTC, fast: one zoneinfo lookup per (day, hour, zone), not per value.

A page of appointments names a few dozen days and hours thousands of times; ``zoneinfo`` is
asked once for each hour's UTC offset and the answer applied to every time in it. An hour whose
offset differs at its two ends (the clock changes inside it) is left to ``zoneinfo`` value by
value, so every answer equals ``datetime(..., tzinfo=zone, fold=0).astimezone(UTC)``.
"""

from __future__ import annotations

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
