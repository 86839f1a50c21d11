"""Seeing real workers work: ``/metrics`` of a worker with ``METRICS_PORT`` equals what the sandbox
answered and what ``sync_runs`` holds; every line of a JSON-logging worker and beat is one JSON
object with its own level; the health checks of docker-compose.yml answer for a live worker and
beat and fail for a dead one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import FaultConfig, SandboxConfig
from tests.celery.conftest import PRACTICE, REPO, Stack, wait_for
from worker.observability.heartbeat import heartbeat_key

pytestmark = pytest.mark.slow
COUNTERS = ("inserted", "updated", "unchanged", "deleted", "dead_lettered")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> list[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return list(text_string_to_metric_families(reply.read().decode()))


def samples(families: list[Any], name: str) -> list[Any]:
    return [s for f in families for s in f.samples if s.name == name]


def sync_through_workers(stack: Stack) -> None:
    """`athena-sync sync all --enqueue --wait`, then no run left running."""
    done = stack.cli("sync", "all", "--enqueue", "--wait", "--timeout", "120", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr + stack.logs()
    running = "SELECT count(*) FROM sync_runs WHERE status = 'running'"
    wait_for(lambda: stack.scalar(running) == 0, 30, "no running units")


def test_worker_metrics_equal_the_sandbox_and_sync_runs(make_stack):
    port = free_port()
    faults = FaultConfig(rate_429=0.05, retry_after_share=0.0, malformed_appointments=3, seed=5)
    stack = make_stack(
        SandboxConfig(departments=3, appointments=300, days=20, faults=faults),
        METRICS_PORT=str(port),
        ATHENA_PAGE_LIMIT="40",
        ATHENA_BACKOFF_BASE_SECONDS="0.01",
        ATHENA_BACKOFF_MAX_SECONDS="0.05",
    )
    worker = stack.start_worker("w1", concurrency=2)
    sync_through_workers(stack)
    families = scrape(port)
    stats = stack.sandbox.stats()

    requests = Counter()
    for s in samples(families, "athena_sync_api_requests_total"):
        assert s.labels["practice"] == PRACTICE
        requests[(s.labels["endpoint"], s.labels["status"])] += int(s.value)
    served = Counter(
        {
            (template.replace("/v1/{practiceid}", ""), status): n
            for template, by_status in stats["requests"].items()
            if template.startswith("/v1/{practiceid}")
            for status, n in by_status.items()
        }
    )
    assert requests == served and served[("/appointments/booked", "429")] > 0
    retried = sum(s.value for s in samples(families, "athena_sync_api_retries_total"))
    assert retried == sum(n for (_, status), n in served.items() if status == "429")
    mints = {
        s.labels["status"]: s.value for s in samples(families, "athena_sync_token_mints_total")
    }
    assert mints == {"200": stats["token_mints"]} and stats["token_mints"] >= 1
    assert sum(requests.values()) == stack.scalar("SELECT sum(api_calls) FROM sync_runs")

    records = {
        (s.labels["resource"], s.labels["outcome"]): s.value
        for s in samples(families, "athena_sync_records_total")
    }
    stored = stack.rows(
        "SELECT resource, " + ", ".join(f"sum({c})" for c in COUNTERS) + " FROM sync_runs "
        "GROUP BY resource"
    )
    expected = {
        (row[0], outcome): n
        for row in stored
        for outcome, n in zip(COUNTERS, row[1:], strict=True)
        if n
    }
    assert records == expected and expected[("appointments", "dead_lettered")] >= 3

    durations = {
        (s.labels["resource"], s.labels["mode"], s.labels["status"]): s.value
        for s in samples(families, "athena_sync_unit_duration_seconds_count")
    }
    runs = stack.rows("SELECT resource, mode, status, count(*) FROM sync_runs GROUP BY 1, 2, 3")
    assert durations == {(r[0], r[1], r[2]): r[3] for r in runs}
    assert any(status == "partial" for _, _, status in durations)
    assert "metrics.serving" in worker.output()
    assert metrics_files_mapped(worker), "pool processes count in multiprocess files"


def metrics_files_mapped(proc: Any) -> list[str]:
    """The multiprocess metric files the worker's pool processes have mapped."""
    main = proc.popen.pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    assert children, "the worker has pool processes"
    return [
        line.split()[-1]
        for child in children
        for line in Path(f"/proc/{child}/maps").read_text().splitlines()
        if "athena-sync-metrics-" in line
    ]


def test_without_metrics_port_nothing_is_served_or_written(make_stack):
    stack = make_stack()
    worker = stack.start_worker("w1", concurrency=2)
    sync_through_workers(stack)
    assert metrics_files_mapped(worker) == []
    assert "metrics.serving" not in worker.output()


def test_a_worker_whose_metrics_port_is_taken_still_works(make_stack):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = make_stack(METRICS_PORT=str(port))
        worker = stack.start_worker("w1")
        sync_through_workers(stack)
    assert "metrics.port_unavailable" in worker.output()
    assert "metrics.serving" not in worker.output()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as a JSON object (fails naming the first line that is not one)."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n{text[-3000:]}")
        assert isinstance(event, dict) and "level" in event and "event" in event, line
        parsed.append(event)
    return parsed


def test_every_line_a_json_worker_and_beat_write_is_a_json_object(make_stack):
    faults = FaultConfig(malformed_appointments=2, seed=3)
    stack = make_stack(SandboxConfig(appointments=200, days=20, faults=faults), LOG_LEVEL="DEBUG")
    worker = stack.start_worker("w1", concurrency=2)
    beat = stack.start_beat()
    wait_for(lambda: "beat: Starting" in beat.output(), 30, "beat started", procs=[beat])
    sync_through_workers(stack)
    os.kill(worker.popen.pid, signal.SIGTERM)  # `docker stop`: warm shutdown, notices in JSON
    worker.popen.wait(timeout=60)
    beat.kill()

    events = json_lines(worker.output())
    levels = {(e["event"], e["level"]) for e in events}
    assert any(e["event"].endswith(" ready.") and e["level"] == "info" for e in events)
    assert ("sync.unit_finished", "info") in levels
    assert ("sync.record_dead_lettered", "warning") in levels
    assert any("Warm shutdown" in e["event"] for e in events)
    leases = [e for e in events if e["event"] == "lease.acquired"]
    assert leases and all(isinstance(e["token"], int) for e in leases)
    beat_events = json_lines(beat.output())
    assert any("Sending due task" in e["event"] and e["level"] == "info" for e in beat_events)


def healthcheck(service: str) -> str:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"][service]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    return str(test[1]).replace("$$", "$")  # compose's escape for a literal $


def test_the_worker_health_check_pings_its_own_node(make_stack):
    stack = make_stack()
    host = f"health-{free_port()}"
    worker = stack.spawn(
        "worker",
        [
            *("celery", "-A", "worker.app", "worker", "--loglevel=INFO", "-n", f"celery@{host}"),
            "--without-gossip",
            "--without-mingle",
        ],
    )
    wait_for(lambda: " ready." in worker.output(), 30, "worker ready", procs=[worker])
    command = healthcheck("worker")
    alive = subprocess.run(
        command, shell=True, env={**stack.env, "HOSTNAME": host}, cwd=stack.tmp, timeout=60
    )
    assert alive.returncode == 0
    other = subprocess.run(
        command, shell=True, env={**stack.env, "HOSTNAME": "nobody"}, cwd=stack.tmp, timeout=60
    )
    assert other.returncode != 0


def test_beat_health_follows_the_heartbeat(make_stack):
    stack = make_stack()
    key = heartbeat_key(stack.env["REDIS_KEY_PREFIX"])
    missing = stack.cli("health", "beat")
    assert missing.returncode == 1 and "no heartbeat" in missing.stdout
    beat = stack.start_beat()
    wait_for(lambda: stack.redis.get(key) is not None, 30, "a heartbeat", procs=[beat])
    healthy = stack.cli("health", "beat")
    assert healthy.returncode == 0 and "healthy" in healthy.stdout, healthy.stdout
    beat.kill()
    stack.redis.set(key, repr(time.time() - 600))  # as if it stopped ten minutes ago
    stale = stack.cli("health", "beat")
    assert stale.returncode == 1 and "stale" in stale.stdout
    assert stack.cli("health", "beat", "--max-age", "900").returncode == 0
