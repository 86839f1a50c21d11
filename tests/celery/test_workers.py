"""Real Redis broker, real ``celery worker`` and ``celery beat`` processes, real Postgres."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sandbox import FaultConfig
from tests.celery.conftest import (
    PRACTICE,
    Stack,
    db_appointments,
    truth_appointments,
    wait_for,
)
from worker.athena.tokens import cache_key
from worker.runtime import open_runtime
from worker.settings import settings_from_env
from worker.sync.plan import SyncRequest, run_request
from worker.units import Unit

pytestmark = pytest.mark.slow
RAN_A_UNIT = re.compile(r"Task tasks\.sync_tasks\.run_unit\[[^\]]+\] succeeded")


def today() -> date:
    return datetime.now(UTC).date()


def finished_runs(stack: Stack, resource: str) -> list[Any]:
    return stack.rows(
        "SELECT status, task_id, error_summary, mode FROM sync_runs "
        "WHERE resource = :r AND status <> 'running' ORDER BY id",
        r=resource,
    )


def test_beat_triggered_sync_lands_in_postgres(make_stack):
    stack = make_stack(SYNC_DAYS_BACK="7", SYNC_DAYS_AHEAD="14")
    worker = stack.start_worker("w1", concurrency=2)
    beat = stack.start_beat()
    start, end = today() - timedelta(days=7), today() + timedelta(days=14)
    expected = truth_appointments(stack.sandbox, start, end)
    truth = stack.sandbox.truth(PRACTICE)
    reference = (len(truth["providers"]), len(truth["departments"]), len(truth["appointmenttypes"]))

    def settled():
        # reference data, and both appointment fan-outs over every department, all landed
        per_mode = stack.rows(
            "SELECT mode, count(DISTINCT department_id) FROM sync_runs WHERE status = "
            "'succeeded' AND resource = 'appointments' GROUP BY mode"
        )
        counts = stack.rows(
            "SELECT (SELECT count(*) FROM providers), (SELECT count(*) FROM departments), "
            "(SELECT count(*) FROM appointment_types)"
        )[0]
        running = stack.scalar("SELECT count(*) FROM sync_runs WHERE status = 'running'")
        return (
            dict(per_mode) == {"incremental": 3, "reconcile": 3}
            and tuple(counts) == reference
            and running == 0
            and db_appointments(stack) == expected
        )

    wait_for(settled, 60, "beat-triggered sync to land", procs=[worker, beat])
    for entry in (
        "reference-data",
        "appointments-incremental",
        "appointments-reconcile",
        "dead-letter-replay",
    ):
        assert f"Scheduler: Sending due task {entry}" in beat.output()
    wait_for(lambda: "replay_dead_letters" in worker.output(), 20, "replay ran", procs=[worker])


def test_two_concurrent_triggers_of_one_unit_make_one_run(make_stack):
    stack = make_stack(ATHENA_PAGE_LIMIT="3")
    worker = stack.start_worker("w1", concurrency=2)
    stack.sandbox.set_faults(latency_ms=1000)  # 12 providers, 3 a page: ~5 s of work
    unit = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}
    calls = [stack.celery_call("run_unit", args=[unit]) for _ in range(2)]
    task_ids = {call.communicate(timeout=60)[0].decode().strip() for call in calls}
    assert len(task_ids) == 2

    wait_for(
        lambda: len(finished_runs(stack, "providers")) == 2, 60, "both triggers", procs=[worker]
    )
    runs = finished_runs(stack, "providers")
    assert sorted(r.status for r in runs) == ["skipped", "succeeded"]
    assert {r.task_id for r in runs} == task_ids
    skipped = next(r for r in runs if r.status == "skipped")
    assert "already running: lease held by task" in skipped.error_summary
    assert stack.scalar("SELECT count(*) FROM providers") == 12
    served = stack.sandbox.stats()["requests"]
    assert sum(served["/v1/{practiceid}/providers"].values()) == 4  # one run's pages, not two


def test_a_task_that_crashes_is_dead_lettered_with_its_arguments(make_stack):
    stack = make_stack()
    worker = stack.start_worker("w1")
    bad_unit = {"resource": "patients", "practice_id": PRACTICE}
    stack.celery_call("run_unit", args=[bad_unit]).communicate(timeout=60)

    wait_for(
        lambda: stack.scalar("SELECT count(*) FROM dead_letters") == 1, 30, "letter", procs=[worker]
    )
    letter = stack.rows("SELECT error_class, task_name, task_args, state FROM dead_letters")[0]
    assert letter.error_class == "task_failed"
    assert letter.task_name == "tasks.sync_tasks.run_unit"
    assert letter.task_args == {"unit": bad_unit}
    assert letter.state == "open"


def test_each_resource_module_has_its_task(make_stack):
    stack = make_stack()
    worker = stack.start_worker("w1")
    stack.celery_call("tasks.providers.sync_providers").communicate(timeout=60)
    stack.celery_call(
        "tasks.appointment_types.sync_appointment_types", args=[PRACTICE]
    ).communicate(timeout=60)
    expected = len(stack.sandbox.truth(PRACTICE)["appointmenttypes"])

    def landed():
        count = "SELECT (SELECT count(*) FROM providers), (SELECT count(*) FROM appointment_types)"
        return tuple(stack.rows(count)[0]) == (12, expected)

    wait_for(landed, 30, "providers and appointment types", procs=[worker])


def test_sigkilled_worker_then_redelivery_matches_the_truth(make_stack):
    # Hard limit 12 s -> visibility timeout 2 * 12 + 2 = 26 s; leases of 5 s.
    stack = make_stack(
        TASK_TIME_LIMIT="12",
        TASK_SOFT_TIME_LIMIT="10",
        SYNC_WINDOW_DAYS="7",
        ATHENA_PAGE_LIMIT="10",
    )
    start, end = today() - timedelta(days=7), today() + timedelta(days=14)
    expected = truth_appointments(stack.sandbox, start, end)
    first = stack.start_worker("doomed")
    stack.sandbox.set_faults(latency_ms=300)
    enqueued = stack.cli(
        "sync",
        "appointments",
        "--mode",
        "reconcile",
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--enqueue",
    )
    assert enqueued.returncode == 0, enqueued.stderr
    assert "enqueued sync_practice practice=195900 task=" in enqueued.stdout

    running = (
        "SELECT count(*) FROM sync_runs WHERE resource = 'appointments' AND status = 'running'"
    )

    def mid_unit():
        return stack.scalar("SELECT count(*) FROM appointments") > 0 and stack.scalar(running) == 1

    wait_for(mid_unit, 60, "a unit part-way through", procs=[first])
    first.kill()
    orphans = stack.rows(
        "SELECT task_id FROM sync_runs WHERE resource = 'appointments' AND status = 'running'"
    )
    assert len(orphans) == 1, "the worker was killed in the middle of a unit"
    assert db_appointments(stack) != expected

    stack.sandbox.set_faults(FaultConfig())
    second = stack.start_worker("heir")
    redelivery = "SELECT status FROM sync_runs WHERE task_id = :t AND status <> 'running'"

    def recovered():
        ended = stack.rows(redelivery, t=orphans[0].task_id)
        # the killed run stays "running" for ever; its redelivery finished in a new row
        return bool(ended) and stack.scalar(running) == 1 and db_appointments(stack) == expected

    wait_for(recovered, 90, "redelivery", procs=[second])
    redelivered = stack.rows(redelivery, t=orphans[0].task_id)
    assert [r.status for r in redelivered] == ["succeeded"]
    assert stack.scalar("SELECT count(*) FROM dead_letters") == 0


def test_four_workers_share_one_token(make_stack):
    stack = make_stack(SYNC_WINDOW_DAYS="3", ATHENA_PAGE_LIMIT="10")
    settings = settings_from_env(stack.env)
    runtime = open_runtime(settings)
    try:  # departments first (their zones), then forget that token: the workers start cold
        run_request(runtime.context(), SyncRequest(("departments",), (PRACTICE,)))
    finally:
        runtime.close()
    stack.redis.delete(
        cache_key(
            settings.redis_key_prefix,
            settings.athena_token_url,
            "sandbox-client",
            settings.athena_scope,
        )
    )
    stack.sandbox.expire_tokens()
    stack.sandbox.reset_stats()
    workers = [stack.start_worker(f"w{i}", via_cli=(i == 0)) for i in range(4)]
    stack.sandbox.set_faults(latency_ms=150)
    start, end = today() - timedelta(days=7), today() + timedelta(days=14)

    done = stack.cli(
        "sync",
        "appointments",
        "--mode",
        "reconcile",
        "--from",
        start.isoformat(),
        "--to",
        end.isoformat(),
        "--enqueue",
        "--wait",
    )
    assert done.returncode == 0, done.stdout + done.stderr + stack.logs()
    assert done.stdout.count("status=succeeded") == 3 * 8  # 3 departments x 8 windows of 3 days
    assert stack.sandbox.stats()["token_mints"] == 1
    for worker in workers:
        assert RAN_A_UNIT.search(worker.output()), worker.name
    assert db_appointments(stack) == truth_appointments(stack.sandbox, start, end)


def test_retries_then_dead_letter_then_periodic_replay_resolves_it(make_stack):
    stack = make_stack(ATHENA_MAX_ATTEMPTS="1")  # every 5xx goes straight back to Celery
    worker = stack.start_worker("w1")
    stack.sandbox.set_faults(error_rate=1.0)
    unit = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}
    task_id = stack.celery_call("run_unit", args=[unit]).communicate(timeout=60)[0].decode().strip()

    def exhausted():
        return len(finished_runs(stack, "providers")) == 6  # the first try + 5 Celery retries

    wait_for(exhausted, 60, "retries to run out", procs=[worker])
    runs = finished_runs(stack, "providers")
    assert {(r.status, r.task_id) for r in runs} == {("failed", task_id)}
    letters = stack.rows("SELECT error_class, attempts, state, task_args FROM dead_letters")
    # one letter per HTTP status seen (500, 502, 503), bumped on every attempt
    assert {(r.error_class, r.state) for r in letters} == {("retries_exhausted", "open")}
    assert sum(r.attempts for r in letters) == 6
    assert all(Unit.from_json(r.task_args) == Unit.from_json(unit) for r in letters)

    stack.sandbox.set_faults(FaultConfig())
    stack.celery_call("replay_dead_letters").communicate(timeout=60)
    open_letters = "SELECT count(*) FROM dead_letters WHERE state <> 'resolved'"
    wait_for(lambda: stack.scalar(open_letters) == 0, 30, "replay", procs=[worker])
    assert stack.scalar("SELECT count(*) FROM providers") == 12


def test_a_redelivered_task_waits_out_its_dead_process_lease_instead_of_skipping(make_stack):
    import json
    import subprocess
    import sys

    import redis

    from worker.leases import Leases

    stack = make_stack()
    # A pool process running task "redelivered-1" died holding the unit's lease (5 s).
    unit = {"resource": "providers", "practice_id": PRACTICE, "mode": "full"}
    leases = Leases(
        redis.Redis.from_url(stack.env["REDIS_URL"]), prefix=stack.env["REDIS_KEY_PREFIX"], ttl=5
    )
    assert leases.acquire(Unit.from_json(unit).key, owner="redelivered-1") is not None
    send = (
        "from tasks.sync_tasks import run_unit; "
        f"run_unit.apply_async(args=[{json.dumps(unit)}], task_id='redelivered-1')"
    )
    subprocess.run([sys.executable, "-c", send], env=stack.env, cwd=stack.tmp, check=True)
    worker = stack.start_worker("w1")
    wait_for(lambda: finished_runs(stack, "providers"), 60, "the redelivered run", procs=[worker])
    runs = finished_runs(stack, "providers")
    assert [(r.status, r.task_id) for r in runs] == [("succeeded", "redelivered-1")]
    assert stack.scalar("SELECT count(*) FROM providers") == 12
