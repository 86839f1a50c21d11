"""`athena-sync sync ... --enqueue --wait --timeout SECONDS`: gives up in time, lists what is
still pending or running, exits 1; without a timeout it waits as long as it takes."""

from __future__ import annotations

import re
import time

import pytest

from tests.celery.conftest import PRACTICE, wait_for

pytestmark = pytest.mark.slow


def test_with_no_worker_the_wait_times_out_listing_the_practice(make_stack):
    stack = make_stack()
    began = time.monotonic()
    done = stack.cli("sync", "providers", "--enqueue", "--wait", "--timeout", "2", timeout=60)
    took = time.monotonic() - began
    assert done.returncode == 1, done.stdout + done.stderr
    assert "timed out after 2 s; still pending or running on the workers" in done.stderr
    task_id = re.search(r"enqueued sync_practice practice=195900 task=(\S+)", done.stdout)
    assert task_id is not None
    assert (
        f"practice={PRACTICE} task={task_id.group(1)} sync_practice PENDING "
        "(its units are not planned yet)" in done.stderr
    )
    assert took < 20, "it gave up after about two seconds (plus start-up)"


def test_a_unit_still_running_at_the_timeout_is_listed_then_a_long_timeout_succeeds(make_stack):
    stack = make_stack(ATHENA_PAGE_LIMIT="3")
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(latency_ms=1500)  # 12 providers, 3 a page: about 6 s of work
    done = stack.cli("sync", "providers", "--enqueue", "--wait", "--timeout", "3", timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"  task=\S+ unit=providers:195900:full STARTED\n", done.stderr), done.stderr
    assert "sync_practice" not in done.stderr, "the fan-out itself had finished"

    finished = "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"
    wait_for(lambda: stack.scalar(finished) == 1, 60, "the unit to finish", procs=[worker])
    stack.sandbox.set_faults(latency_ms=0)
    again = stack.cli("sync", "providers", "--enqueue", "--wait", "--timeout", "60", timeout=90)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "unit=providers:195900:full status=succeeded" in again.stdout
    assert "timed out" not in again.stderr


def test_timeout_needs_enqueue_and_wait(make_stack):
    stack = make_stack()
    refused = stack.cli("sync", "providers", "--enqueue", "--timeout", "5")
    assert refused.returncode == 2 and "--timeout needs --enqueue --wait" in refused.stderr
