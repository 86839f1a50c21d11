"""Change detection by ``row_hash`` end to end: what the mapping adds to a record counts too.

The hash covers the row as written (mapped columns and ``raw``), so a record that did not
change upstream is still rewritten when its mapping context did: the department's zone behind
an appointment's ``start_at``, the ``hidden`` flag a department gets from the other listing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sandbox import SandboxServer
from tests.athena.conftest import Reply, Seen
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import changed_ids, in_horizon, make_harness, run
from tests.sync.test_real_shapes import (  # noqa: F401  (fake is a fixture)
    DEPARTMENT,
    NO_ZONE_NAME,
    FakeAthena,
    _sync,
    appointment,
    fake,
)


def _written(results: list[Any]) -> tuple[int, int, int]:
    return (
        sum(r.counts.inserted for r in results),
        sum(r.counts.updated for r in results),
        sum(r.counts.unchanged for r in results),
    )


def test_a_department_zone_change_rewrites_its_appointments(
    fake: tuple[FakeAthena, Harness],  # noqa: F811
) -> None:
    api, h = fake
    api.appointments["1"] = [appointment("1"), appointment("2", starttime="09:30")]
    _sync(h)
    before = {r["appointment_id"]: r["start_at"] for r in h.rows("appointments")}

    # The appointments are served byte for byte as before; only their department moved zone.
    api.listings["departments"] = [{**DEPARTMENT, "timezonename": "US/Central"}, NO_ZONE_NAME]
    _sync(h, "departments")
    results = _sync(h, "appointments", mode="reconcile")
    assert _written(results) == (0, 2, 0)
    rows = {r["appointment_id"]: r for r in h.rows("appointments")}
    for ident, start in before.items():
        assert rows[ident]["start_at"] == start + timedelta(hours=1)
        assert rows[ident]["timezone_name"] == "US/Central"

    assert _written(_sync(h, "appointments", mode="reconcile")) == (0, 0, 2)


def test_a_department_turning_hidden_is_rewritten(fake: tuple[FakeAthena, Harness]) -> None:  # noqa: F811
    api, h = fake
    hidden: set[str] = set()

    def departments(seen: Seen) -> Reply:
        # The default listing (no showalldepartments) omits portal-hidden departments.
        rows = api.listings["departments"]
        if seen.query.get("showalldepartments") != "true":
            rows = [d for d in rows if str(d["departmentid"]) not in hidden]
        return api._page("departments", rows, seen)

    api.server.api("/departments", departments)
    assert _written(_sync(h, "departments")) == (2, 0, 0)
    assert {r["department_id"]: r["hidden"] for r in h.rows("departments")} == {
        "1": False,
        "2": False,
    }

    hidden.add("2")  # the records themselves do not change
    assert _written(_sync(h, "departments")) == (0, 1, 1)
    assert {r["department_id"]: r["hidden"] for r in h.rows("departments")} == {
        "1": False,
        "2": True,
    }
    assert _written(_sync(h, "departments")) == (0, 0, 2)


def test_feed_notes_are_no_change_between_feed_and_listing(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    """The feed's records carry ``appointmentnotes``, the listing's do not: an appointment read
    by the listing, then the feed, then the listing again was written once; a real change
    still is, and ``raw`` is the record of the last write."""
    sandbox = {"feed_appointment_notes": True}
    for h in make_harness(make_sandbox, fresh_pg_url, sandbox, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")  # the horizon, by the listing
        changed = in_horizon(h, changed_ids(h.server.mutate(PRACTICE, modify=4, seed=3)))
        assert changed
        assert _written(run(h, "reconcile"))[1] == len(changed)  # by the listing
        _, updated, unchanged = _written(run(h, "changed"))  # by the feed, with notes
        assert (updated, unchanged) == (0, len(changed))
        assert _written(run(h, "reconcile"))[:2] == (0, 0)
        raws = {r["appointment_id"]: r["raw"] for r in h.rows("appointments")}
        assert not any("appointmentnotes" in raws[i] for i in changed)

        again = in_horizon(h, changed_ids(h.server.mutate(PRACTICE, modify=4, seed=4)))
        assert again
        assert _written(run(h, "changed"))[1] == len(again)  # a real change, from the feed
        raws = {r["appointment_id"]: r["raw"] for r in h.rows("appointments")}
        assert all(raws[i]["appointmentnotes"] for i in again)
        assert _written(run(h, "reconcile"))[:2] == (0, 0)
