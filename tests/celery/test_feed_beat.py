"""The beat's ``appointments-changes`` entry with the product's defaults (the changed-data feed,
multi-department listings): real ``celery beat`` and ``worker`` processes, Redis, Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox import SandboxConfig
from tests.celery.conftest import PRACTICE, wait_for

pytestmark = pytest.mark.slow


def test_beat_reads_the_feed_and_a_change_outside_the_horizon_lands(make_stack):
    today = datetime.now(UTC).date()
    config = SandboxConfig(departments=3, appointments=600, days=60, anchor_date=today)
    stack = make_stack(config, SYNC_MULTI_DEPARTMENT="true", SYNC_DAYS_BACK="7")
    stack.sandbox.subscribe(PRACTICE)
    change = stack.sandbox.mutate(PRACTICE, checkout=2, cancel_past=1, past_days=14)
    past = {*change["checkout"], *change["cancel_past"]}
    assert len(past) == 3
    truth = {a["appointmentid"]: a for a in stack.sandbox.truth(PRACTICE)["appointments"]}
    horizon = today - timedelta(days=7)
    assert all(datetime.strptime(truth[i]["date"], "%m/%d/%Y").date() < horizon for i in past)

    worker = stack.start_worker("w1", concurrency=2)
    beat = stack.start_beat()

    def landed() -> bool:
        rows = stack.rows(
            "SELECT appointment_id, status FROM appointments WHERE appointment_id = ANY(:ids)",
            ids=sorted(past),
        )
        return {r[0]: r[1] for r in rows} == {i: truth[i]["appointmentstatus"] for i in past}

    wait_for(landed, 90, "the feed's changes to land", procs=[worker, beat])
    assert "Scheduler: Sending due task appointments-changes" in beat.output()
    changed = stack.rows(
        "SELECT department_id, status, fetched FROM sync_runs WHERE mode = 'changed' "
        "AND status = 'succeeded'"
    )
    assert changed and all(r[0] is None for r in changed)
    assert sum(r[2] for r in changed) == 3
    # The incremental poll is one unit for the whole practice: one request per window.
    wait_for(
        lambda: (
            stack.scalar(
                "SELECT count(*) FROM sync_runs WHERE mode = 'incremental' "
                "AND status = 'succeeded' AND resource = 'appointments' "
                "AND department_id IS NULL"
            )
            == 1
        ),
        60,
        "the multi-department poll",
        procs=[worker, beat],
    )
    served = stack.sandbox.stats()["requests"]
    assert "/v1/{practiceid}/appointments/booked" not in served
    assert served["/v1/{practiceid}/appointments/booked/multipledepartment"]["200"] >= 1
