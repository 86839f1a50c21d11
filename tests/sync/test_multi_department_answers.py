"""A multi-department answer must account for every department it was asked about before their
watermarks move or anything of them is marked deleted (``worker.sync.read.accounting``): a
server answering only the first ``departmentid`` loses nothing, a server answering departments
not asked for fails the unit, and a trusted listing costs what it cost before."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox import FaultConfig, SandboxServer
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import changed_ids, in_horizon, make_harness, requests_to, run, source
from tests.sync.feedkit import stored as stored_rows
from tests.sync.test_empty_multi_department import run as run_through
from tests.sync.test_multi_department import BOOKED, MULTI, TOGETHER, horizon_truth, watermarks
from worker.units import default_window, split_windows

FIRST_ONLY = FaultConfig(multi_department_first_only=True)


@pytest.fixture
def h(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Eight departments read together, the practice's departments already stored."""
    for harness in make_harness(make_sandbox, fresh_pg_url, {"departments": 8}, TOGETHER):
        run(harness, "incremental", "departments")
        yield harness


def first_department(h: Harness) -> str:
    """The department the listing names first (the units ask in stored-id order)."""
    return min(r["department_id"] for r in h.rows("departments", "deleted_at IS NULL"))


def windows(h: Harness) -> list[tuple[Any, Any]]:
    first, last = default_window(
        datetime.now(UTC).date(),
        days_back=h.settings.sync_days_back,
        days_ahead=h.settings.sync_days_ahead,
    )
    return list(split_windows(first, last, h.settings.sync_window_days))


def read_alone_without_changes(h: Harness) -> int:
    """Requests a first-only answer costs on a full read: per window, every department but
    the first, and the first too where it holds nothing in that window."""
    first = first_department(h)
    days = [
        datetime.strptime(a["date"], "%m/%d/%Y").date()
        for a in h.server.truth(PRACTICE)["appointments"]
        if a["departmentid"] == first
    ]
    departments = len(h.rows("departments", "deleted_at IS NULL"))
    return sum(departments - any(start <= day <= end for day in days) for start, end in windows(h))


def behind_watermarks(h: Harness) -> list[str]:
    """Appointments in the horizon changed at or before their department's watermark that are
    not stored as they are: what a watermark moved past without reading."""
    marks, expected, found = watermarks(h), horizon_truth(h), stored_rows(h)
    department = {
        a["appointmentid"]: a["departmentid"] for a in h.server.truth(PRACTICE)["appointments"]
    }
    return sorted(
        ident
        for ident, (status, modified, start) in expected.items()
        if modified is not None
        and modified <= marks[department[ident]]
        and found.get(ident) != (status, modified, start)
    )


def test_a_listing_answering_only_the_first_department_loses_nothing(h: Harness) -> None:
    h.server.set_faults(FIRST_ONLY)
    h.server.reset_stats()
    (first,) = run(h, "incremental")
    assert first.status == "succeeded" and first.unit.department_id is None
    assert requests_to(h, MULTI) == len(windows(h))
    assert requests_to(h, BOOKED) == read_alone_without_changes(h)
    assert first.note and "read alone" in first.note
    assert stored_rows(h) == horizon_truth(h)
    assert source(h).get("multi_department_verified_at") is None  # never shown two

    h.server.advance_clock(600)
    change = h.server.mutate(PRACTICE, modify=12, cancel=4, add=4, seed=5)
    changed = in_horizon(h, changed_ids(change))
    elsewhere = {
        a["departmentid"]
        for a in h.server.truth(PRACTICE)["appointments"]
        if a["appointmentid"] in changed
    } - {first_department(h)}
    assert elsewhere  # changes in departments the listing does not answer
    (second,) = run(h, "incremental")
    assert second.status == "succeeded"
    assert second.counts.inserted + second.counts.updated >= len(changed)
    assert stored_rows(h) == horizon_truth(h)
    assert behind_watermarks(h) == []


def test_reconcile_marks_nothing_a_first_department_listing_left_out(h: Harness) -> None:
    """The worst case: the listing was trusted (it showed several departments today), then
    answers only the first one. Departments holding live appointments it showed nothing of
    are read alone before anything is marked, and the trust is dropped."""
    run(h, "incremental")
    assert source(h)["multi_department_verified_at"] is not None
    inside = set(stored_rows(h))
    gone = set(h.server.mutate(PRACTICE, delete=10, seed=8)["deleted"]) & inside
    assert gone
    h.server.set_faults(FIRST_ONLY)
    results = run(h, "reconcile")
    assert {r.status for r in results} == {"succeeded"}
    assert {r.unit.department_id for r in results} == {None}
    assert set(stored_rows(h)) == inside - gone  # what vanished, and nothing else
    assert sum(r.counts.deleted for r in results) == len(gone)
    assert any("read alone" in (r.note or "") for r in results)
    assert source(h)["multi_department_verified_at"] is None


def test_polls_cost_one_request_per_window_while_the_listing_answers(h: Harness) -> None:
    """Without the fault the cost is what it was: one request per window, the first read, a
    poll seeing a change in one department and a quiet poll alike."""
    h.server.reset_stats()
    (first,) = run(h, "incremental")
    assert first.status == "succeeded" and not first.note
    assert (requests_to(h, MULTI), requests_to(h, BOOKED)) == (len(windows(h)), 0)
    assert source(h)["multi_department_verified_at"] is not None
    h.server.advance_clock(600)
    assert in_horizon(h, changed_ids(h.server.mutate(PRACTICE, modify=1, seed=2)))
    for _ in range(2):  # the change, then nothing
        h.server.reset_stats()
        (poll,) = run(h, "incremental")
        assert poll.status == "succeeded" and not poll.note
        assert (requests_to(h, MULTI), requests_to(h, BOOKED)) == (len(windows(h)), 0)
    assert stored_rows(h) == horizon_truth(h)


class Unasked:
    """A gateway that moves one record of the first multi-department answer to a department
    nobody asked for."""

    def __init__(self) -> None:
        self.done = False

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if self.done or not response.url.split("?")[0].endswith(MULTI):
            return
        body = response.json()
        if body.get("appointments"):
            body["appointments"][0]["departmentid"] = "999"
            response._content = requests.compat.json.dumps(body).encode()
            self.done = True


def test_an_answer_with_departments_not_asked_for_fails_and_is_refused(h: Harness) -> None:
    hook = Unasked()
    (failed,) = run_through(h, "incremental", hook)
    assert hook.done and failed.status == "failed" and failed.unit.department_id is None
    (letter,) = h.rows("dead_letters", "state = 'open'")
    assert (letter["error_class"], letter["path"]) == ("client_error", MULTI)
    assert "not asked for" in letter["error_message"] and "999" in letter["error_message"]
    assert watermarks(h) == {}  # nothing moved
    assert source(h)["multi_department_refusal"].startswith(
        "the multi-department listing answered departments it was not asked for"
    )
    later = run(h, "incremental")  # planned per department while refused
    assert len(later) == 8 and {r.status for r in later} == {"succeeded"}
    assert stored_rows(h) == horizon_truth(h)
