"""worker.wallclock: the per-hour offset cache gives zoneinfo's answer for every wall time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from worker.parse import ambiguous_eastern, local_to_utc, parse_athena_datetime, zone_info

ZONES = [
    "US/Eastern",
    "America/Phoenix",
    "America/Los_Angeles",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Europe/Dublin",
    "Pacific/Chatham",
]
# Transition days (both directions, half-hour shifts), an ordinary day, and early-history days
# whose offsets are not whole minutes.
DAYS = [
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 4, 5),
    date(2026, 10, 4),
    date(2026, 3, 29),
    date(2026, 9, 27),
    date(2026, 7, 1),
    date(1883, 11, 18),
    date(1901, 1, 1),
]


def _direct(day: date, clock: time, zone: str) -> datetime:
    return datetime.combine(day, clock).replace(tzinfo=zone_info(zone), fold=0).astimezone(UTC)


@pytest.mark.parametrize("zone", ZONES)
def test_local_to_utc_matches_zoneinfo_minute_by_minute(zone):
    for day in DAYS:
        for minute in range(0, 24 * 60, 1):
            clock = time(minute // 60, minute % 60, 59 if minute % 7 else 0)
            assert local_to_utc(day, clock, zone) == _direct(day, clock, zone), (day, clock)


def test_audit_times_match_zoneinfo_across_the_fall_back_hour():
    for second in range(0, 3 * 3600, 13):
        wall = datetime(2026, 11, 1, 0, 0) + timedelta(seconds=second)
        text = wall.strftime("%m/%d/%Y %H:%M:%S")
        expected = wall.replace(tzinfo=zone_info("US/Eastern")).astimezone(UTC)
        assert parse_athena_datetime(text, "lastmodified") == expected


def test_ambiguous_eastern_matches_zoneinfo_every_ten_minutes():
    eastern = zone_info("US/Eastern")
    start = datetime(2026, 10, 31, tzinfo=UTC)
    for step in range(0, 3 * 24 * 6):
        moment = start + timedelta(minutes=10 * step)
        local = moment.astimezone(eastern)
        expected = local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
        assert ambiguous_eastern(moment) is expected, moment
