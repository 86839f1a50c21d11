"""The shared request budget: several processes hammering one practice stay under its ceiling."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

import pytest

from sandbox import FaultConfig, SandboxConfig, SandboxServer
from tests.athena import workers
from tests.athena.conftest import client_settings

PROCESSES = 4
RPS = 10.0
BURST = 2
SECONDS = 3.0


def max_in_window(times: list[float], window: float) -> int:
    """The most requests that fell inside any ``window``-second span."""
    best, start = 0, 0
    for end, stamp in enumerate(times):
        while stamp - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.slow
def test_processes_share_one_budget_per_practice(redis_url: str, redis_prefix: str) -> None:
    stamps: list[tuple[float, int]] = []
    guard = threading.Lock()

    def on_request(method: str, path: str, status: int, seconds: float) -> None:
        if path == "/v1/195900/ping":
            with guard:
                stamps.append((time.monotonic(), status))

    # The sandbox enforces a ceiling a little above ours: a client that overshoots sees 429s.
    config = SandboxConfig(seed=2, appointments=10, faults=FaultConfig(rps_limit=RPS * 1.5))
    ctx = multiprocessing.get_context("spawn")
    with SandboxServer(config, on_request=on_request) as server:
        settings = client_settings(
            server.url,
            redis_url=redis_url,
            redis_key_prefix=redis_prefix,
            rate_limit_rps=RPS,
            rate_limit_burst=BURST,
        )
        barrier: Any = ctx.Barrier(PROCESSES)
        results: Any = ctx.Queue()
        procs = [
            ctx.Process(target=workers.hammer, args=(settings, barrier, results, SECONDS))
            for _ in range(PROCESSES)
        ]
        for proc in procs:
            proc.start()
        calls = [results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
    hammered = sorted(stamps)[PROCESSES:]  # drop each process's warm-up call
    times = [t for t, _ in hammered]
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    print(f"budget: {len(times)} requests in {span:.2f}s = {rate:.2f} rps; per process {calls}")
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    assert all(c > 0 for c in calls)  # every process got a share
    assert [s for _, s in hammered if s != 200] == []  # no 429 from the server's own ceiling
    assert RPS * 0.7 <= rate <= RPS * 1.2
    assert max_in_window(times, 1.0) <= RPS + BURST + 1
