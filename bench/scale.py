"""Scenario 2: N worker processes sharing one request budget through Redis.

The sandbox answers every request after ``latency_ms`` and allows ``rps`` requests per second per
practice (beyond that: 429). athena-sync runs with ``ATHENA_RATE_LIMIT_RPS`` equal to that budget
and ``REDIS_URL`` set, so every process takes its slots from the same Redis token bucket and its
token from the same Redis cache.

Per N: a fresh database and Redis prefix; the harness syncs the reference listings
(departments first: appointments need their zones), then queues the practice's appointment units
(``reconcile``: per department and 31-day window) on a Redis list and starts N processes
(``python -m bench.scale '<json>'``) that meet at a barrier and then pop and run units
(``run_unit``, the code the Celery task calls) until the list is empty. Throughput is read from
the sandbox's request counters, sampled while they run: "steady" is from one second after the
barrier until the last unit was taken (after that fewer than N processes have work).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import redis

from bench.child import RESULT_PREFIX, peak_rss_mb
from bench.measure import reap, result_line, spawn
from bench.pg import fresh_database, sqlalchemy_url
from bench.sandbox import (
    CLIENT_ID,
    CLIENT_SECRET,
    PRACTICE,
    SandboxProcess,
    StatsDelta,
    api_requests,
)
from bench.side_by_side import migrate

RAMP_SECONDS = 1.0


@dataclass(frozen=True)
class ScaleOptions:
    """The scenario's knobs."""

    workers: tuple[int, ...]
    latency_ms: int
    rps: float
    page_limit: int
    window: tuple[date, date]
    admin_url: str
    redis_url: str


@dataclass(frozen=True)
class ScalePoint:
    """One N."""

    workers: int
    seconds: float  # barrier to the last process done
    appointments: int
    units: int
    failed_units: int
    stats: StatsDelta  # setup + workers
    worker_requests: int
    steady_rps: float
    steady_seconds: float
    peak_rss_mb: float  # the largest worker

    @property
    def overall_rps(self) -> float:
        """Requests per second over the whole worker phase (tail included)."""
        return self.worker_requests / self.seconds if self.seconds else 0.0

    @property
    def records_per_second(self) -> float:
        """Appointments per second over the whole worker phase."""
        return self.appointments / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """A flat JSON summary."""
        return {
            "workers": self.workers,
            "seconds": round(self.seconds, 2),
            "appointments": self.appointments,
            "units": self.units,
            "failed_units": self.failed_units,
            "api_requests": self.stats.api_requests,
            "worker_requests": self.worker_requests,
            "throttled_429": self.stats.throttled,
            "token_mints": self.stats.token_mints,
            "steady_rps": round(self.steady_rps, 2),
            "steady_seconds": round(self.steady_seconds, 1),
            "overall_rps": round(self.overall_rps, 2),
            "records_per_second": round(self.records_per_second),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
        }


def worker_env(
    database_url: str, base_url: str, prefix: str, options: ScaleOptions
) -> dict[str, str]:
    """athena-sync settings of every process of one N (the harness's setup included)."""
    return {
        "DATABASE_URL": sqlalchemy_url(database_url),
        "ATHENA_BASE_URL": base_url,
        "ATHENA_CLIENT_ID": CLIENT_ID,
        "ATHENA_CLIENT_SECRET": CLIENT_SECRET,
        "ATHENA_PAGE_LIMIT": str(options.page_limit),
        "ATHENA_RATE_LIMIT_RPS": str(options.rps),
        "REDIS_URL": options.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
    }


class Sampler:
    """Samples the sandbox's ``/v1`` request count and the queue length every 0.25 s."""

    def __init__(self, sandbox: SandboxProcess, queue_length: Callable[[], int]) -> None:
        self.samples: list[tuple[float, int, int]] = []  # (monotonic, requests, queued)
        self._sandbox = sandbox
        self._queue_length = queue_length
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            requests = api_requests(self._sandbox.stats())
            self.samples.append((time.monotonic(), requests, self._queue_length()))
            if self._stop.wait(0.25):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def steady(self, released: float) -> tuple[float, float]:
        """(requests/s, seconds) from ``RAMP_SECONDS`` after the barrier until the queue
        was first seen empty."""
        start = released + RAMP_SECONDS
        inside = [s for s in self.samples if s[0] >= start]
        if not inside:
            return 0.0, 0.0
        first = inside[0]
        last = next((s for s in inside if s[2] == 0), inside[-1])
        seconds = last[0] - first[0]
        return ((last[1] - first[1]) / seconds if seconds > 0 else 0.0), seconds


def _setup(env: dict[str, str], window: tuple[date, date]) -> list[dict[str, Any]]:
    """Sync the reference listings here; return the appointment units as JSON."""
    from worker.logging import configure_logging
    from worker.resources import ReadStrategy, resource_names
    from worker.runtime import open_runtime
    from worker.settings import settings_from_env
    from worker.sync.plan import live_department_ids
    from worker.sync.runner import run_unit
    from worker.units import Unit, department_units

    settings = settings_from_env(env)
    configure_logging(settings)
    runtime = open_runtime(settings)
    try:
        ctx = runtime.context()
        for resource in resource_names(ReadStrategy.LISTING):
            result = run_unit(ctx, Unit(resource, PRACTICE, "full"))
            if result.status != "succeeded":
                raise RuntimeError(f"setup {resource}: {result.status} {result.error}")
        units = department_units(
            "appointments",
            PRACTICE,
            live_department_ids(ctx, PRACTICE),
            mode="reconcile",
            start=window[0],
            end=window[1],
            max_days=settings.sync_window_days,
        )
    finally:
        runtime.close()
    return [unit.to_json() for unit in units]


def run_point(sandbox: SandboxProcess, workers: int, options: ScaleOptions) -> ScalePoint:
    """Measure one N on a fresh database and Redis prefix."""
    prefix = f"athena-bench-{uuid.uuid4().hex[:10]}"
    queue_key, ready_key = f"{prefix}:bench:units", f"{prefix}:bench:ready"
    client = redis.Redis.from_url(options.redis_url)
    try:
        with fresh_database(options.admin_url) as database_url:
            migrate(database_url)
            env = worker_env(database_url, sandbox.url, prefix, options)
            before = sandbox.stats()
            units = _setup(env, options.window)
            client.rpush(queue_key, *[json.dumps(u) for u in units])
            spec = {"env": env, "queue": queue_key, "ready": ready_key, "workers": workers}
            processes = [spawn("bench.scale", json.dumps(spec)) for _ in range(workers)]
            with Sampler(sandbox, lambda: int(client.llen(queue_key))) as sampler:
                while int(client.get(ready_key) or 0) < workers:
                    if any(p.poll() is not None for p in processes):
                        break
                    time.sleep(0.02)
                released = time.monotonic()
                reaped = [reap(p) for p in processes]
                seconds = time.monotonic() - released
            results = [
                result_line(out, p.returncode, "scale worker")
                for p, (out, _) in zip(processes, reaped, strict=True)
            ]
            after = sandbox.stats()
            stats = StatsDelta.between(before, after)
            steady_rps, steady_seconds = sampler.steady(released)
            worker_requests = api_requests(after) - _first_after(sampler.samples, released)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    return ScalePoint(
        workers=workers,
        seconds=seconds,
        appointments=sum(r["fetched"] for r in results),
        units=sum(r["units"] for r in results),
        failed_units=sum(r["failed"] for r in results),
        stats=stats,
        worker_requests=worker_requests,
        steady_rps=steady_rps,
        steady_seconds=steady_seconds,
        peak_rss_mb=max(float(r["rss_mb"]) for r in results),
    )


def _first_after(samples: list[tuple[float, int, int]], moment: float) -> int:
    before = [s for s in samples if s[0] <= moment]
    return before[-1][1] if before else samples[0][1]


def run_scale(
    sandbox: SandboxProcess, options: ScaleOptions, say: Callable[[str], None] = print
) -> list[ScalePoint]:
    """Every N in turn against one sandbox with latency and an rps ceiling."""
    sandbox.set_faults(latency_ms=options.latency_ms, rps_limit=options.rps)
    points = []
    try:
        for workers in options.workers:
            point = run_point(sandbox, workers, options)
            say(
                f"  {workers} worker(s): {point.steady_rps:5.2f} req/s steady "
                f"({point.overall_rps:5.2f} overall), {point.records_per_second:,.0f} rec/s, "
                f"{point.stats.throttled} x 429, {point.stats.token_mints} mint(s), "
                f"{point.seconds:.0f} s, {point.failed_units} failed unit(s)"
            )
            points.append(point)
    finally:
        sandbox.set_faults()
    return points


def worker_main(spec: dict[str, Any]) -> None:
    """One worker process: open the runtime, meet the others, run units until none are left."""
    from worker.logging import configure_logging
    from worker.runtime import open_runtime
    from worker.settings import settings_from_env
    from worker.sync.runner import run_unit
    from worker.units import Unit

    settings = settings_from_env(spec["env"])
    configure_logging(settings)
    runtime = open_runtime(settings)
    client = redis.Redis.from_url(spec["env"]["REDIS_URL"])
    client.incr(spec["ready"])
    while int(client.get(spec["ready"]) or 0) < spec["workers"]:
        time.sleep(0.01)
    fetched = units = failed = 0
    try:
        ctx = runtime.context()
        while (raw := client.lpop(spec["queue"])) is not None:
            assert isinstance(raw, bytes)
            result = run_unit(ctx, Unit.from_json(json.loads(raw)))
            units += 1
            failed += result.status != "succeeded"
            fetched += result.counts.fetched
    finally:
        runtime.close()
        client.close()
    summary = {"fetched": fetched, "units": units, "failed": failed, "rss_mb": peak_rss_mb()}
    print(RESULT_PREFIX + json.dumps(summary))


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))
