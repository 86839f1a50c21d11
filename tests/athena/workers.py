"""Process entry points for the multi-process tests (spawned: importable, picklable arguments)."""

from __future__ import annotations

import time
from typing import Any

from worker.athena import build_client
from worker.settings import Settings


def one_request(settings: Settings, barrier: Any, results: Any) -> None:
    """Build a client from settings, wait for every sibling, then make one API call."""
    client = build_client(settings)
    barrier.wait(timeout=60)
    body = client.get("195900", "/departments", {"limit": 1})
    results.put((len(body["departments"]), client.stats.token_mints))
    client.close()


def hammer(settings: Settings, barrier: Any, results: Any, seconds: float) -> None:
    """Build a client, wait for every sibling, then call the API as fast as the budget allows."""
    client = build_client(settings)
    client.get("195900", "/ping")  # token minted and connection open before the clock starts
    barrier.wait(timeout=60)
    stop = time.monotonic() + seconds
    calls = 0
    while time.monotonic() < stop:
        client.get("195900", "/ping")
        calls += 1
    results.put(calls)
    client.close()
