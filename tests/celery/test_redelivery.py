"""A task whose process dies every time it runs is not redelivered for ever."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.celery.conftest import PRACTICE, Proc, Stack
from worker.app import QUEUE

pytestmark = pytest.mark.slow
UNIT = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}
LETTERS = "SELECT count(*) FROM dead_letters WHERE error_class = 'task_failed'"


def pool_pids(worker: Proc) -> list[int]:
    """The worker's pool processes (the children of its main process)."""
    pid = worker.popen.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


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
    # One redelivery allowed after a death; leases of 5 s (a dead holder blocks that long).
    stack = make_stack(TASK_MAX_RETRIES="1", ATHENA_PAGE_LIMIT="3")
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
        "SELECT task_name, task_args, state, attempts, error_message FROM dead_letters"
    )[0]
    assert (letter.task_name, letter.task_args, letter.state, letter.attempts) == (
        "tasks.sync_tasks.run_unit",
        {"unit": UNIT},
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
