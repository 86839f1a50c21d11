"""A failed practice fan-out is a letter the periodic replay can replay (real worker, Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.celery.conftest import PRACTICE, db_appointments, truth_appointments, wait_for
from worker.leases import Leases
from worker.units import Unit

pytestmark = pytest.mark.slow


def test_a_failed_sync_practice_is_resolved_by_the_periodic_replay(make_stack):
    stack = make_stack(TASK_MAX_RETRIES="0", SYNC_DAYS_BACK="7", SYNC_DAYS_AHEAD="14")
    # Another trigger holds the practice's departments on an empty database: the fan-out has no
    # department to plan appointments for and, with no retries left, fails for good.
    leases = Leases(
        redis.Redis.from_url(stack.env["REDIS_URL"]), prefix=stack.env["REDIS_KEY_PREFIX"], ttl=60
    )
    held = leases.acquire(Unit("departments", PRACTICE).key, owner="another-trigger")
    assert held is not None
    worker = stack.start_worker("w1")
    stack.celery_call("sync_practice", args=[PRACTICE, ["appointments"]]).communicate(timeout=60)
    letters = "SELECT count(*) FROM dead_letters WHERE task_name LIKE '%sync_practice'"
    wait_for(lambda: stack.scalar(letters) == 1, 30, "the practice's letter", procs=[worker])
    letter = stack.rows(
        "SELECT id, error_class, resource, practice_id, task_args, state FROM dead_letters"
    )[0]
    assert (letter.error_class, letter.resource, letter.practice_id, letter.state) == (
        "task_failed",
        "appointments",
        PRACTICE,
        "open",
    )
    assert letter.task_args == {
        "request": {
            "resources": ["appointments"],
            "practice_id": PRACTICE,
            "mode": "incremental",
            "start": None,
            "end": None,
        }
    }
    assert stack.scalar("SELECT count(*) FROM appointments") == 0

    leases.release(held)
    replay = stack.celery_call("replay_dead_letters").communicate(timeout=60)  # what beat sends
    replay_id = replay[0].decode().strip()
    resolved = "SELECT state FROM dead_letters WHERE id = :i"
    wait_for(
        lambda: stack.scalar(resolved, i=letter.id) == "resolved", 60, "the replay", procs=[worker]
    )
    # Planning succeeded: the letter is resolved; the units it sent run on the workers.
    today = datetime.now(UTC).date()
    expected = truth_appointments(stack.sandbox, today - timedelta(days=7), today + timedelta(14))
    wait_for(lambda: db_appointments(stack) == expected, 60, "the sent units", procs=[worker])
    assert expected
    assert stack.scalar("SELECT count(*) FROM departments") == 3
    assert stack.scalar("SELECT count(*) FROM dead_letters WHERE state <> 'resolved'") == 0
    # Departments ran in the replay (appointments are planned from them); each appointments
    # unit ran in a run_unit task of its own, not in the replay's process.
    runs = stack.rows("SELECT resource, task_id FROM sync_runs WHERE task_id IS NOT NULL")
    by_replay = [r.resource for r in runs if r.task_id == replay_id]
    assert by_replay == ["departments"]
    units = {r.task_id for r in runs if r.resource == "appointments"}
    assert len(units) == 3 and replay_id not in units
    for unit_task in units:
        assert f"run_unit[{unit_task}] succeeded" in worker.output()


def test_a_fan_out_that_could_not_read_departments_is_not_an_empty_success(make_stack):
    stack = make_stack(ATHENA_MAX_ATTEMPTS="1")
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(error_rate=1.0)  # departments fail (a 5xx), on an empty database
    stack.celery_call("sync_practice", args=[PRACTICE, ["appointments"]]).communicate(timeout=60)
    unplanned = (
        "SELECT error_summary FROM sync_runs WHERE resource = 'appointments' AND status = 'failed'"
    )
    wait_for(lambda: stack.scalar(unplanned), 30, "the unplanned appointments", procs=[worker])
    assert stack.scalar(unplanned).startswith(
        "no appointments planned for practice 195900: no departments in the database, and "
        "reading them was failed"
    )
    assert [r.status for r in stack.rows("SELECT status FROM sync_runs ORDER BY id")] == [
        "failed",
        "failed",
    ]
