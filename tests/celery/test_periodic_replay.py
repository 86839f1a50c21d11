"""The periodic replay on a real worker: it hands units to the workers instead of running them
in its own process, and retention and orphan marking are done even when the replay dies."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from models import DeadLetter, SyncRun
from tasks.letters import task_failure
from tests.celery.conftest import (
    PRACTICE,
    Stack,
    db_appointments,
    pool_pids,
    truth_appointments,
    wait_for,
)
from worker.leases import Leases
from worker.store.letters import add_request_letter
from worker.store.runs import utcnow
from worker.units import Unit

pytestmark = pytest.mark.slow
UNIT = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}


def add_task_letter(stack: Stack, name: str, args: list[Any]) -> int:
    """The letter a task's ``on_failure`` writes (it hit its time limit, say)."""
    failure = task_failure(
        f"tasks.sync_tasks.{name}", args, {}, RuntimeError(), practice=name == "sync_practice"
    )
    with Session(stack.engine) as session, session.begin():
        add_request_letter(session, failure, run_id=None, now=utcnow())
    return int(stack.scalar("SELECT max(id) FROM dead_letters"))


def replay(stack: Stack) -> str:
    """Send ``replay_dead_letters`` as beat does; its task id."""
    out = stack.celery_call("replay_dead_letters").communicate(timeout=60)[0]
    return out.decode().strip()


def test_the_periodic_replay_hands_a_unit_to_the_workers(make_stack):
    stack = make_stack()
    letter = add_task_letter(stack, "run_unit", [UNIT])
    worker = stack.start_worker("w1")
    replay_id = replay(stack)
    state = "SELECT state FROM dead_letters WHERE id = :i"
    wait_for(lambda: stack.scalar(state, i=letter) == "resolved", 60, "the unit", procs=[worker])

    runs = stack.rows("SELECT task_id, status FROM sync_runs")
    assert [r.status for r in runs] == ["succeeded"]
    assert runs[0].task_id != replay_id, "the unit ran in a run_unit task, not in the replay"
    assert f"run_unit[{runs[0].task_id}] succeeded" in worker.output()
    note = stack.scalar("SELECT resolution_note FROM dead_letters WHERE id = :i", i=letter)
    assert note.startswith("unit succeeded in run")
    assert stack.scalar("SELECT count(*) FROM providers") == 12


def test_retention_and_orphans_are_done_even_when_the_replay_dies(make_stack):
    # One delivery of a task: a replay whose process died is not run again.
    stack = make_stack(TASK_MAX_RETRIES="1", ATHENA_PAGE_LIMIT="1", SYNC_DAYS_BACK="7")
    now = datetime.now(UTC)
    with Session(stack.engine) as session, session.begin():
        old = now - timedelta(days=40)
        session.add_all(
            [
                DeadLetter(
                    kind="request",
                    resource="providers",
                    practice_id=PRACTICE,
                    error_class="client_error",
                    first_failed_at=old,
                    last_failed_at=old,
                    state="resolved",
                    resolved_at=old,
                    dedup_key="expired",
                ),
                # A worker killed three minutes ago (TASK_TIME_LIMIT is 60 s): an orphan.
                SyncRun(
                    resource="providers",
                    practice_id=PRACTICE,
                    mode="full",
                    status="running",
                    started_at=now - timedelta(minutes=3),
                    task_id="killed-worker",
                ),
            ]
        )
    # A practice's request on an empty database: its replay reads departments in-process.
    letter = add_task_letter(stack, "sync_practice", [PRACTICE, ["appointments"]])
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(latency_ms=700)  # 3 departments, 1 a page: seconds
    replay_id = replay(stack)
    departments = "SELECT count(*) FROM sync_runs WHERE task_id = :t AND resource = 'departments'"
    wait_for(lambda: stack.scalar(departments, t=replay_id), 30, "departments", procs=[worker])
    for pid in pool_pids(worker):  # the replay's process dies (out of memory, say)
        os.kill(pid, signal.SIGKILL)
    refused = f"replay_dead_letters[{replay_id}] raised unexpected: DeliveriesExhausted"
    wait_for(lambda: refused in worker.output(), 30, "its redelivery refused", procs=[worker])

    assert stack.scalar("SELECT count(*) FROM dead_letters WHERE dedup_key = 'expired'") == 0
    orphan = "SELECT status FROM sync_runs WHERE task_id = 'killed-worker'"
    assert stack.scalar(orphan) == "failed"
    row = stack.rows("SELECT state, attempts FROM dead_letters WHERE id = :i", i=letter)[0]
    assert (row.state, row.attempts) == ("replayed", 1), "its replay never reported back"

    # The next replay counts that as a failed attempt and re-plans the practice.
    stack.sandbox.set_faults(latency_ms=0)
    leases = Leases(stack.redis, prefix=stack.env["REDIS_KEY_PREFIX"], ttl=5)
    held = Unit("departments", PRACTICE).key  # the dead replay's lease runs out (5 s)
    wait_for(lambda: leases.holder(held) is None, 15, "the dead lease", procs=[worker])
    replay(stack)
    state = "SELECT state, attempts FROM dead_letters WHERE id = :i"
    wait_for(
        lambda: tuple(stack.rows(state, i=letter)[0]) == ("resolved", 2),
        60,
        "the next replay",
        procs=[worker],
    )
    today = now.date()
    expected = truth_appointments(stack.sandbox, today - timedelta(days=7), today + timedelta(90))
    wait_for(lambda: db_appointments(stack) == expected, 60, "the sent units", procs=[worker])
