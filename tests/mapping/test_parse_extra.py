"""Edge cases of the query-side time conversion and numeric limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from worker.parse import BadRecord, parse_float, parse_int, to_eastern_param


def test_watermark_param_is_eastern_wall_time() -> None:
    assert to_eastern_param(datetime(2026, 6, 2, 21, 30, 37, tzinfo=UTC)) == "06/02/2026 17:30:37"
    assert to_eastern_param(datetime(2026, 12, 2, 21, 30, 37, tzinfo=UTC)) == "12/02/2026 16:30:37"


@pytest.mark.parametrize(
    ("moment", "sent"),
    [
        (datetime(2026, 11, 1, 5, 45, tzinfo=UTC), "11/01/2026 00:45:00"),  # 01:45 EDT, repeated
        (datetime(2026, 11, 1, 6, 45, tzinfo=UTC), "11/01/2026 01:45:00"),  # 01:45 EST: exact
        (datetime(2026, 11, 1, 7, 30, tzinfo=UTC), "11/01/2026 02:30:00"),  # after the repeat
    ],
)
def test_watermark_param_steps_back_across_the_repeated_hour(moment: datetime, sent: str) -> None:
    assert to_eastern_param(moment) == sent


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, "3000000000"])
def test_whole_numbers_beyond_the_column_are_bad_records(value: object) -> None:
    with pytest.raises(BadRecord, match="out of range"):
        parse_int(value, "duration")


@pytest.mark.parametrize("value", ["nan", "inf", float("nan"), "-Infinity"])
def test_non_finite_numbers_are_bad_records(value: object) -> None:
    with pytest.raises(BadRecord):
        parse_float(value, "latitude")


def test_ambiguous_eastern_is_only_the_repeated_hour() -> None:
    from worker.parse import ambiguous_eastern

    assert ambiguous_eastern(datetime(2026, 11, 1, 5, 30, tzinfo=UTC))  # 01:30 EDT
    assert ambiguous_eastern(datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST
    assert not ambiguous_eastern(datetime(2026, 11, 1, 7, 30, tzinfo=UTC))  # 02:30 EST
    assert not ambiguous_eastern(datetime(2026, 3, 8, 7, 30, tzinfo=UTC))  # spring forward
    assert not ambiguous_eastern(None)


def test_ambiguous_eastern_between_looks_for_a_repeated_hour_in_the_range() -> None:
    from worker.parse import ambiguous_eastern_between

    def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=UTC)

    assert ambiguous_eastern_between(at(10, 1, 0), at(12, 1, 0))  # holds 2026-11-01 05:00-07:00
    assert ambiguous_eastern_between(at(11, 1, 6, 59), at(11, 1, 6, 59))
    assert ambiguous_eastern_between(at(11, 1, 4), at(11, 1, 5))  # ends where it begins
    assert not ambiguous_eastern_between(at(11, 1, 7), at(11, 30, 0))  # begins where it ended
    assert not ambiguous_eastern_between(at(3, 1, 0), at(10, 31, 0))  # spring forward only
    assert ambiguous_eastern_between(at(12, 31, 0), datetime(2027, 11, 7, 6, tzinfo=UTC))
    other_zone = timezone(timedelta(hours=-5))
    assert ambiguous_eastern_between(at(3, 1, 0), at(3, 2, 0).astimezone(other_zone))
