"""Wall-clock time to instant, across DST transitions, with exact UTC answers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from worker.parse import BadRecord, local_to_utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "clock", "zone", "expected"),
    [
        # US/Eastern, spring forward 2024-03-10 02:00 EST -> 03:00 EDT
        (date(2024, 3, 10), time(1, 59), "US/Eastern", utc(2024, 3, 10, 6, 59)),
        (date(2024, 3, 10), time(3, 0), "US/Eastern", utc(2024, 3, 10, 7, 0)),
        (date(2024, 3, 10), time(8, 0), "US/Eastern", utc(2024, 3, 10, 12, 0)),
        (date(2024, 3, 9), time(8, 0), "US/Eastern", utc(2024, 3, 9, 13, 0)),
        # 02:30 does not exist that day: shifted forward like a wall clock, i.e. 03:30 EDT.
        (date(2024, 3, 10), time(2, 30), "US/Eastern", utc(2024, 3, 10, 7, 30)),
        # US/Eastern, fall back 2024-11-03 02:00 EDT -> 01:00 EST
        (date(2024, 11, 3), time(0, 30), "US/Eastern", utc(2024, 11, 3, 4, 30)),
        # 01:30 happens twice: the first occurrence (EDT) is chosen.
        (date(2024, 11, 3), time(1, 30), "US/Eastern", utc(2024, 11, 3, 5, 30)),
        (date(2024, 11, 3), time(2, 0), "US/Eastern", utc(2024, 11, 3, 7, 0)),
        (date(2024, 11, 3), time(8, 0), "US/Eastern", utc(2024, 11, 3, 13, 0)),
        # Arizona does not observe DST: UTC-7 all year, on both transition days.
        (date(2024, 3, 10), time(2, 30), "America/Phoenix", utc(2024, 3, 10, 9, 30)),
        (date(2024, 7, 1), time(8, 0), "America/Phoenix", utc(2024, 7, 1, 15, 0)),
        (date(2024, 11, 3), time(1, 30), "US/Arizona", utc(2024, 11, 3, 8, 30)),
        # Pacific and Hawaii for good measure.
        (date(2024, 7, 1), time(8, 0), "US/Pacific", utc(2024, 7, 1, 15, 0)),
        (date(2024, 1, 2), time(8, 0), "US/Pacific", utc(2024, 1, 2, 16, 0)),
        (date(2024, 7, 1), time(8, 0), "Pacific/Honolulu", utc(2024, 7, 1, 18, 0)),
        # Local dates near midnight land on the next UTC day.
        (date(2024, 12, 31), time(23, 30), "US/Eastern", utc(2025, 1, 1, 4, 30)),
    ],
)
def test_local_to_utc(day, clock, zone, expected):
    result = local_to_utc(day, clock, zone)
    assert result == expected
    assert result.tzinfo == UTC


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "EST5EDT6", "", "../etc/passwd", "  "])
def test_unknown_zone_is_a_bad_record(zone):
    with pytest.raises(BadRecord) as caught:
        local_to_utc(date(2024, 7, 1), time(8, 0), zone)
    assert caught.value.field == "timezonename"
