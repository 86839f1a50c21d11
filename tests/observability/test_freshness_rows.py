"""The freshness rows from facts (pure): which read covers a department, the changed-data feed's
practice-level coverage, never-synced practices, thresholds past each resource's schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.settings import Settings
from worker.store.freshness import (
    Fact,
    Thresholds,
    assemble,
    changed_coverage,
    exit_code,
    last_successes,
)

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
P = "195900"
THRESHOLDS = Thresholds.from_settings(Settings())  # warn 15, error 60 minutes past schedule


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def read(resource: str, minutes: float, department: str | None = None, *, changed=False) -> Fact:
    return Fact("read", P, resource, department, changed, ago(minutes), ago(minutes - 1), 1)


def departments(*ids: str) -> list[Fact]:
    return [Fact("department", P, None, d) for d in ids]


def listings(minutes: float = 1) -> list[Fact]:
    return [read(r, minutes) for r in ("departments", "providers", "appointment-types")]


def rows_of(facts: list[Fact], practices: tuple[str, ...] = (P,)) -> dict:
    rows = assemble(facts, practices=practices, thresholds=THRESHOLDS, now=NOW)
    return {(r.resource, r.department_id): r for r in rows}


def test_each_department_is_covered_by_its_own_reads() -> None:
    facts = [*departments("2", "10"), *listings(), read("appointments", 3, "2")]
    facts.append(read("appointments", 30, "10"))
    facts.append(Fact("watermark", P, "appointments", "2", at=ago(50)))
    facts.append(Fact("letters", P, "appointments", "10", count=4))
    rows = rows_of(facts)
    assert [k for k in rows if k[0] == "appointments"] == [
        ("appointments", "2"),
        ("appointments", "10"),
    ]
    two, ten = rows[("appointments", "2")], rows[("appointments", "10")]
    assert (two.source, two.state, two.watermark, two.open_letters) == ("booked", "ok", ago(50), 0)
    assert (ten.source, ten.state, ten.open_letters) == ("booked", "warn", 4)
    assert ten.age_seconds == pytest.approx(30 * 60)
    assert rows[("providers", None)].source == "listing"
    assert exit_code(rows.values()) == 1


def test_a_practice_level_changed_read_covers_every_department() -> None:
    facts = [*departments("1", "2", "3"), *listings(), read("appointments", 120, "1")]
    facts.append(read("appointments", 2, None, changed=True))
    rows = rows_of(facts)
    for department in ("1", "2", "3"):
        row = rows[("appointments", department)]
        assert (row.source, row.state) == ("changed", "ok"), department
        assert row.last_read_at == ago(2)


def test_a_practice_level_booked_read_covers_every_department() -> None:
    """One multi-department listing (department NULL, not the feed) read every department."""
    facts = [*departments("1", "2"), *listings(), read("appointments", 90, "1")]
    facts.append(read("appointments", 3, None))
    rows = rows_of(facts)
    for department in ("1", "2"):
        row = rows[("appointments", department)]
        assert (row.source, row.state, row.last_read_at) == ("booked", "ok", ago(3)), department


def test_a_newer_booked_read_wins_over_an_older_changed_read() -> None:
    facts = [*departments("1", "2"), *listings(), read("appointments", 1, "1")]
    facts.append(read("appointments", 40, None, changed=True))
    rows = rows_of(facts)
    assert (rows[("appointments", "1")].source, rows[("appointments", "1")].state) == (
        "booked",
        "ok",
    )
    assert (rows[("appointments", "2")].source, rows[("appointments", "2")].state) == (
        "changed",
        "warn",
    )


def test_changed_coverage_is_practice_level_changed_reads_of_that_practice_only() -> None:
    other = Fact("read", "195901", "appointments", None, True, ago(1), ago(0), 1)
    department_level = read("appointments", 1, "7", changed=True)
    not_changed = read("appointments", 1, None)
    facts = [other, department_level, not_changed]
    assert changed_coverage(facts, P, "appointments") is None
    facts.append(read("appointments", 5, None, changed=True))
    found = changed_coverage(facts, P, "appointments")
    assert found is not None and (found.at, found.source) == (ago(5), "changed")


def test_never_synced_practices_and_practices_without_departments_are_errors() -> None:
    rows = assemble([*listings()], practices=(P, "195901"), thresholds=THRESHOLDS, now=NOW)
    by_key = {(r.practice_id, r.resource, r.department_id): r for r in rows}
    assert by_key[(P, "appointments", None)].state == "error"  # no departments stored
    assert by_key[(P, "providers", None)].state == "ok"
    never = [r for r in rows if r.practice_id == "195901"]
    assert len(never) == 4 and {(r.state, r.source, r.age_seconds) for r in never} == {
        ("error", None, None)
    }
    assert exit_code(rows) == 2


@pytest.mark.parametrize(
    ("resource", "minutes", "state"),
    [
        ("appointments", 20, "ok"),  # read every 5 minutes: 15 late is not yet past 15
        ("appointments", 20.5, "warn"),
        ("appointments", 65, "warn"),
        ("appointments", 65.5, "error"),
        ("providers", 190, "ok"),  # read every 180 minutes
        ("providers", 196, "warn"),
        ("providers", 241, "error"),
    ],
)
def test_states_count_lateness_past_the_resource_schedule(resource, minutes, state) -> None:
    assert THRESHOLDS.state(resource, minutes * 60) == state


def test_practice_level_letters_count_in_every_department_row() -> None:
    """A letter without a department (a failed multi-department or feed read) concerns every
    department of the practice: it is counted in each of their rows, beside their own."""
    facts = [*departments("1", "2"), *listings(), read("appointments", 2, None, changed=True)]
    facts.append(Fact("letters", P, "appointments", None, count=3))
    facts.append(Fact("letters", P, "appointments", "2", count=1))
    facts.append(Fact("letters", P, "providers", None, count=2))
    rows = rows_of(facts)
    assert rows[("appointments", "1")].open_letters == 3
    assert rows[("appointments", "2")].open_letters == 4
    assert rows[("providers", None)].open_letters == 2
    assert rows[("departments", None)].open_letters == 0


def test_only_reads_of_the_whole_horizon_make_a_department_fresh() -> None:
    """A narrow manual run (``--from D --to D``) or one reconcile window, of a department or of
    the practice, read the other days not at all: the age is the newest read of the horizon."""
    narrow = [
        Fact("read", P, "appointments", "1", False, ago(1), ago(0), 1, covers=False),
        Fact("read", P, "appointments", None, False, ago(1), ago(0), 1, covers=False),
    ]
    facts = [*departments("1", "2"), *listings(), read("appointments", 90, "1"), *narrow]
    rows = rows_of(facts)
    one, two = rows[("appointments", "1")], rows[("appointments", "2")]
    assert (one.source, one.last_read_at, one.state) == ("booked", ago(90), "error")
    assert (two.source, two.age_seconds, two.state) == (None, None, "error")
    assert last_successes(facts)[(P, "appointments")] == ago(0)  # a success all the same

    facts.append(read("appointments", 4, None))  # an incremental read of the whole practice
    rows = rows_of(facts)
    assert {rows[("appointments", d)].last_read_at for d in ("1", "2")} == {ago(4)}
