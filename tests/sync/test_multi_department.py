"""Multi-department listings (``/appointments/booked/multipledepartment``, ``departmentid``
repeated) for incremental polls and reconcile, over HTTP into Postgres (issue 14, item 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import in_horizon, make_harness, requests_to, run, source, stored, truth
from worker.store.runs import Counts
from worker.sync.plan import default_window
from worker.units import Unit

MULTI = "/appointments/booked/multipledepartment"
BOOKED = "/appointments/booked"
# Marking spares rows written within SYNC_CLOCK_SKEW_SECONDS of a read: here one host writes.
TOGETHER = {
    "SYNC_MULTI_DEPARTMENT": "true",
    "SYNC_APPOINTMENTS_SOURCE": "booked",
    "SYNC_CLOCK_SKEW_SECONDS": "0",
}


@pytest.fixture
def h(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Eight departments; the product's default of reading them together."""
    yield from make_harness(make_sandbox, fresh_pg_url, {"departments": 8}, TOGETHER)


def watermarks(h: Harness) -> dict[str, datetime]:
    return {r["scope"]: r["watermark"] for r in h.rows("sync_state")}


def horizon_truth(h: Harness) -> dict[str, Any]:
    expected = truth(h)
    return {i: expected[i] for i in in_horizon(h, set(expected))}


def test_a_practice_costs_one_request_per_window(h: Harness) -> None:
    run(h, "incremental", "departments")
    h.server.reset_stats()
    (result,) = run(h, "incremental")
    assert result.status == "succeeded" and result.unit.department_id is None
    windows = 4  # 7 days back + 90 ahead in windows of 31 days
    assert requests_to(h, MULTI) == windows and requests_to(h, BOOKED) == 0
    assert stored(h) == horizon_truth(h)
    marks = watermarks(h)
    assert set(marks) == {d["department_id"] for d in h.rows("departments")}
    assert len(set(marks.values())) == 1  # one read, one watermark for all

    apart = h.settings.with_overrides(sync_multi_department=False)
    h.server.reset_stats()
    each = run(h, "incremental", settings=apart)
    assert len(each) == 8 and {r.unit.department_id for r in each} == set(marks)
    assert requests_to(h, BOOKED) == 8 * windows and requests_to(h, MULTI) == 0


def near_watermarks(h: Harness) -> int:
    """Stored rows in the horizon a read from the watermarks returns again, changed or not: those
    modified within the overlap of the oldest watermark (a watermark is the newest change read)."""
    overlap = timedelta(seconds=h.settings.sync_lastmodified_overlap_seconds)
    oldest = min(watermarks(h).values()) - overlap
    inside = stored_in_horizon(h)
    rows = h.rows("appointments", "deleted_at IS NULL")
    return sum(1 for r in rows if r["appointment_id"] in inside and r["last_modified_at"] >= oldest)


def test_watermarks_carry_between_the_two_ways_of_reading(h: Harness) -> None:
    run(h, "incremental", "all")
    again_read = near_watermarks(h)
    h.server.advance_clock(600)
    change = h.server.mutate(PRACTICE, modify=12, seed=5)
    changed = in_horizon(h, {m["appointmentid"] for m in change["modified"]})
    assert changed
    apart = h.settings.with_overrides(sync_multi_department=False)
    each = run(h, "incremental", settings=apart)  # per department, from the shared watermark
    assert sum(r.counts.updated for r in each) == len(changed)
    assert sum(r.counts.fetched for r in each) == len(changed) + again_read
    again_read = near_watermarks(h)
    h.server.advance_clock(600)
    again = h.server.mutate(PRACTICE, modify=12, seed=6)
    moved = in_horizon(h, {m["appointmentid"] for m in again["modified"]})
    (together,) = run(h, "incremental")  # together, from the oldest department watermark
    assert together.counts.updated == len(moved)
    assert together.counts.fetched == len(moved) + again_read
    assert stored(h) == horizon_truth(h)


@pytest.mark.parametrize(
    ("refusal", "status"),
    [
        ({"forbidden_endpoints": (f"{PRACTICE}:{MULTI}",)}, "403"),
        ({"unserved_endpoints": (f"{PRACTICE}:{MULTI}",)}, "404"),
    ],
)
def test_a_refused_multi_department_listing_falls_back_per_department(
    make_sandbox: Callable[..., SandboxServer],
    fresh_pg_url: str,
    refusal: dict[str, Any],
    status: str,
) -> None:
    for h in make_harness(make_sandbox, fresh_pg_url, {"departments": 8, **refusal}, TOGETHER):
        run(h, "incremental", "departments")
        (result,) = run(h, "incremental")
        assert result.status == "succeeded" and result.unit.department_id is None
        assert result.note and result.note.startswith(f"{MULTI} refused ({status}")
        assert result.note.endswith("read per department")
        assert requests_to(h, MULTI, status) == 1 and requests_to(h, BOOKED) == 8 * 4
        assert stored(h) == horizon_truth(h)
        assert source(h)["multi_department_refusal"].startswith(status)
        # Later plans read per department at once, without asking the refused listing again.
        later = run(h, "incremental")
        assert len(later) == 8 and all(r.unit.department_id for r in later)
        assert requests_to(h, MULTI, status) == 1


def stored_in_horizon(h: Harness) -> set[str]:
    """Ids of stored appointments whose day lies in today's horizon (by the stored day)."""
    first, last = default_window(
        datetime.now(UTC).date(),
        days_back=h.settings.sync_days_back,
        days_ahead=h.settings.sync_days_ahead,
    )
    return {r["appointment_id"] for r in h.rows("appointments") if first <= r["local_date"] <= last}


def test_reconcile_marks_what_vanished_within_the_listing_scope(h: Harness) -> None:
    h.sync("all")  # every served day, beyond the horizon too
    inside = stored_in_horizon(h)
    outside = set(stored(h)) - inside
    assert outside
    gone = set(h.server.mutate(PRACTICE, delete=12, seed=8)["deleted"])
    assert gone & inside and gone & outside
    results = run(h, "reconcile")
    assert len(results) == 4 and {r.unit.department_id for r in results} == {None}
    assert {r.status for r in results} == {"succeeded"}
    assert not any(r.counts.deletions_deferred for r in results)
    deleted = {r["appointment_id"] for r in h.rows("appointments", "deleted_at IS NOT NULL")}
    assert deleted == gone & inside  # what vanished from the windows read, and nothing else
    assert set(stored(h)) == (inside - gone) | outside
    assert sum(r.counts.deleted for r in results) == len(deleted)


def test_reconcile_defers_marking_when_the_listing_moves_while_read(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    # One window holds every served day, so any deletion moves the listing being read.
    env = {**TOGETHER, "ATHENA_PAGE_LIMIT": "40", "SYNC_DAYS_BACK": "10", "SYNC_DAYS_AHEAD": "20"}
    for h in make_harness(make_sandbox, fresh_pg_url, {"departments": 8, "days": 27}, env):
        run(h, "incremental", "all")
        before = set(stored(h))
        moved: list[str] = []

        def delete_once(
            unit: Unit, counts: Counts, moved: list[str] = moved, server: SandboxServer = h.server
        ) -> None:
            if not moved and unit.mode == "reconcile" and counts.fetched:
                moved.extend(server.mutate(PRACTICE, delete=2, seed=9)["deleted"])

        (result,) = run(h, "reconcile", on_progress=delete_once)
        assert len(moved) == 2 and result.unit.department_id is None
        assert result.counts.deletions_deferred and result.counts.deleted == 0
        assert set(stored(h)) == before  # nothing marked on a read that moved
        (again,) = run(h, "reconcile")  # the next complete, stable read marks them
        assert again.counts.deleted == 2 and set(stored(h)) == before - set(moved)


def test_bad_records_of_a_multi_department_read_are_lettered_against_their_department(
    h: Harness,
) -> None:
    """One unit reads every department, but a bad record names its own: its letter counts
    against that department (freshness), not against all of them. A record whose department
    is itself unreadable (an object) stays a practice-level letter."""
    from sandbox import FaultConfig

    run(h, "incremental", "departments")
    h.server.set_faults(FaultConfig(malformed_appointments=12, seed=3))
    (result,) = run(h, "incremental")
    assert result.unit.department_id is None and result.counts.dead_lettered
    letters = h.rows("dead_letters", "kind = 'record'")
    assert letters
    departments = {d["department_id"] for d in h.rows("departments")}
    for letter in letters:
        named = letter["record"].get("departmentid")
        if isinstance(named, (str, int)) and str(named) in departments:
            assert letter["department_id"] == str(named), letter["error_message"]
        else:
            assert letter["department_id"] is None, letter["error_message"]
    assert any(letter["department_id"] is not None for letter in letters)
