"""A task whose process dies every time it runs is delivered at most TASK_MAX_RETRIES times, its
letter waits for a person, and a death spends none of the retries kept for the API's errors."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.celery.conftest import PRACTICE, Proc, Stack, pool_pids, wait_for
from worker.app import QUEUE

pytestmark = pytest.mark.slow
UNIT = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}
LETTERS = "SELECT count(*) FROM dead_letters WHERE error_class = 'task_failed'"


def runs_of(stack: Stack, task_id: str) -> list[int]:
    return [r.id for r in stack.rows("SELECT id FROM sync_runs WHERE task_id = :t", t=task_id)]


def kill_every_run(stack: Stack, worker: Proc, task_id: str, *, quiet: float) -> list[int]:
    """Kill the pool process as soon as each new run of the task has begun (an OOM kill), until
    a task_failed letter exists and no run began for ``quiet`` seconds after it (or 90 s)."""
    killed: list[int] = []
    deadline, settled = time.monotonic() + 90, None
    while time.monotonic() < min(deadline, settled or deadline):
        if settled is None and stack.scalar(LETTERS):
            settled = time.monotonic() + quiet
        for run_id in runs_of(stack, task_id):
            if run_id not in killed:
                for pid in pool_pids(worker):
                    os.kill(pid, signal.SIGKILL)
                killed.append(run_id)
        assert worker.popen.poll() is None, worker.output()
        time.sleep(0.05)
    return killed


def test_a_unit_whose_process_dies_every_time_ends_as_one_task_failed_letter(make_stack):
    # Two deliveries allowed; leases of 5 s (a dead holder blocks that long).
    stack = make_stack(TASK_MAX_RETRIES="2", ATHENA_PAGE_LIMIT="3")
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(latency_ms=500)  # 12 providers, 3 a page: a run lasts seconds
    call = stack.celery_call("run_unit", args=[UNIT])
    task_id = call.communicate(timeout=60)[0].decode().strip()

    # A redelivery waits out its dead holder's lease (5 s) plus up to 5 s of jitter: 12 s of
    # quiet after the letter means no delivery is still coming.
    killed = kill_every_run(stack, worker, task_id, quiet=12)

    assert len(killed) == 2, f"the first run and one redelivery, got {killed}\n{worker.output()}"
    assert stack.scalar(LETTERS) == 1, worker.output()
    letter = stack.rows(
        "SELECT id, task_name, task_args, state, attempts, error_message FROM dead_letters"
    )[0]
    assert (letter.task_name, letter.task_args, letter.state, letter.attempts) == (
        "tasks.sync_tasks.run_unit",
        {"unit": UNIT, "process_deaths": 2},
        "open",
        1,
    )
    assert f"the process running task {task_id} died 2 times" in letter.error_message
    # Nothing of the task is left in the broker: no further delivery can come.
    prefix = f"{stack.env['REDIS_KEY_PREFIX']}:celery:"
    assert stack.redis.llen(prefix + QUEUE) == 0
    assert stack.redis.hlen(prefix + "unacked") == 0
    assert f"run_unit[{task_id}] raised unexpected: DeliveriesExhausted" in worker.output()
    assert stack.scalar("SELECT count(*) FROM providers") == 0

    # The periodic replay leaves it alone: running it again would likely kill another process.
    replay = stack.celery_call("replay_dead_letters").communicate(timeout=60)[0].decode().strip()
    done = f"replay_dead_letters[{replay}] succeeded"
    wait_for(lambda: done in worker.output(), 30, "the periodic replay", procs=[worker])
    assert "'replayed': 0" in worker.output()
    after = stack.rows("SELECT state, attempts FROM dead_letters")
    assert [(r.state, r.attempts) for r in after] == [("open", 1)]
    assert len(stack.rows("SELECT id FROM sync_runs")) == len(killed), "nothing ran again"

    # A person replays it by hand, in-process (the fault is gone now).
    stack.sandbox.set_faults(latency_ms=0)
    by_hand = stack.cli("dead-letters", "replay", str(letter.id))
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    assert stack.scalar("SELECT state FROM dead_letters") == "resolved"
    assert stack.scalar("SELECT count(*) FROM providers") == 12


def test_a_death_spends_none_of_the_retries_kept_for_api_errors(make_stack):
    stack = make_stack(
        TASK_MAX_RETRIES="2",
        ATHENA_PAGE_LIMIT="3",
        ATHENA_MAX_ATTEMPTS="1",
        TASK_RETRY_BASE_SECONDS="0.1",
    )
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(latency_ms=500)
    task_id = stack.celery_call("run_unit", args=[UNIT]).communicate(timeout=60)[0].decode()
    task_id = task_id.strip()
    wait_for(lambda: runs_of(stack, task_id), 30, "the first run", procs=[worker])
    for pid in pool_pids(worker):  # it dies once (an OOM kill) ...
        os.kill(pid, signal.SIGKILL)
    stack.sandbox.set_faults(latency_ms=0, error_rate=1.0)  # ... then the API fails (5xx)

    # The redelivery waits out the dead holder's lease, then runs: its first try and all of
    # its TASK_MAX_RETRIES retries are still there for the API's errors.
    done = f"run_unit[{task_id}] succeeded"  # the task returns its failed result
    wait_for(lambda: done in worker.output(), 90, "the unit's last retry", procs=[worker])
    statuses = [
        r.status
        for r in stack.rows(
            "SELECT status FROM sync_runs WHERE task_id = :t ORDER BY id", t=task_id
        )
    ]
    assert statuses == ["running", "failed", "failed", "failed"], worker.output()
    letter = stack.rows("SELECT error_class, attempts FROM dead_letters")
    assert [(r.error_class, r.attempts) for r in letter] == [("retries_exhausted", 3)]
