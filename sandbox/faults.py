"""Request-level fault injection: latency, a per-practice rps ceiling, random 429s, legacy 403
throttles and 5xx, and listing answers that are 200 but not the listing envelope.

Decisions come from one ``random.Random(seed)`` drawn in request order, so a sequential client
sees the same faults again after ``set_faults`` with the same config.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.config import FaultConfig

JSON = "application/json;charset=UTF-8"
HTML = "text/html"
GATEWAY_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
ERROR_500 = b'{"error":"An unexpected error occurred.","detailedmessage":"Internal Server Error"}'
# Apigee-style gateway throttle bodies (the real gateway's wording is unverified).
SPIKE_ARREST = (
    b'{"fault":{"faultstring":"Spike arrest violation. Allowed rate : MessageRate{capacity=%d,'
    b' period=Seconds}","detail":{"errorcode":"policies.ratelimit.SpikeArrestViolation"}}}'
)
QUOTA_429 = (
    b'{"fault":{"faultstring":"Rate limit quota violation. Quota limit exceeded.",'
    b'"detail":{"errorcode":"policies.ratelimit.QuotaViolation"}}}'
)
# The retired Mashery gateway's throttle (ATHENA_API.md section 4): 403 with an HTML page.
OVER_QPS = (
    b"<html><head><title>403 Forbidden</title></head>"
    b"<body><h1>Developer Over Qps</h1></body></html>"
)
OVER_QPS_HEADERS = (("X-Mashery-Error-Code", "ERR_403_DEVELOPER_OVER_QPS"),)
GATEWAY_200 = (
    b"<html><head><title>Service Unavailable</title></head><body>Please retry.</body></html>"
)
# What a listing's 200 turns into, in turn (see FaultInjector.spoil).
ENVELOPE_FAULTS = ("no_collection", "truncated", "empty", "html", "array")


@dataclass(frozen=True)
class FaultAnswer:
    """A canned answer that replaces the real one."""

    status: int
    body: bytes
    content_type: str | None
    headers: tuple[tuple[str, str], ...] = ()


class FaultInjector:
    """Applies one FaultConfig; replace it with ``configure``."""

    def __init__(self, faults: FaultConfig, *, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.configure(faults)

    def configure(self, faults: FaultConfig) -> None:
        """Switch to ``faults`` and restart the seeded sequence and the rps buckets."""
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._buckets: dict[str, tuple[float, float]] = {}
            self._spoiled = 0

    def latency(self) -> float:
        """Seconds to wait before answering."""
        return self.faults.latency_ms / 1000.0

    def decide(self, practice_id: str | None) -> FaultAnswer | None:
        """A fault answer for this request, or None to answer normally."""
        faults = self.faults
        if not faults.active:
            return None
        with self._lock:
            if faults.rps_limit and practice_id and not self._take(practice_id, faults.rps_limit):
                capacity = max(1, int(faults.rps_limit))
                return FaultAnswer(429, SPIKE_ARREST % capacity, JSON, (("Retry-After", "1"),))
            if faults.rate_429 and self._rng.random() < faults.rate_429:
                return self._throttle(faults)
            if faults.error_rate and self._rng.random() < faults.error_rate:
                return self._server_error(faults)
            if faults.legacy_throttle_rate and self._rng.random() < faults.legacy_throttle_rate:
                return FaultAnswer(403, OVER_QPS, HTML, OVER_QPS_HEADERS)
        return None

    def spoil(self, body: bytes) -> FaultAnswer | None:
        """A 200 that replaces a listing's answer (``body``), or None to send it as is.

        The kinds take turns (:data:`ENVELOPE_FAULTS`). Dropping the collection from an empty
        listing would leave a valid empty page, so such a listing gets the next kind instead.
        """
        rate = self.faults.envelope_error_rate
        with self._lock:
            if not rate or self._rng.random() >= rate:
                return None
            kind = ENVELOPE_FAULTS[self._spoiled % len(ENVELOPE_FAULTS)]
            self._spoiled += 1
        payload = json.loads(body)
        rows = [v for v in payload.values() if isinstance(v, list)]
        if kind == "no_collection" and any(rows):
            kept = {k: v for k, v in payload.items() if not isinstance(v, list)}
            return FaultAnswer(200, json.dumps(kept).encode(), JSON)
        if kind in ("no_collection", "truncated"):
            return FaultAnswer(200, body[: len(body) // 2], JSON)
        if kind == "empty":
            return FaultAnswer(200, b"", JSON)
        if kind == "html":
            return FaultAnswer(200, GATEWAY_200, HTML)
        return FaultAnswer(200, json.dumps(rows[0] if rows else []).encode(), JSON)

    def _take(self, practice_id: str, rps: float) -> bool:
        # Token bucket per practice: capacity max(1, rps), refilled at rps per second.
        capacity = max(1.0, rps)
        now = self._clock()
        tokens, last = self._buckets.get(practice_id, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rps)
        if tokens < 1.0:
            self._buckets[practice_id] = (tokens, now)
            return False
        self._buckets[practice_id] = (tokens - 1.0, now)
        return True

    def _throttle(self, faults: FaultConfig) -> FaultAnswer:
        if self._rng.random() < faults.retry_after_share:
            headers = (("Retry-After", str(faults.retry_after_seconds)),)
            return FaultAnswer(429, QUOTA_429, JSON, headers)
        return FaultAnswer(429, QUOTA_429, JSON)

    def _server_error(self, faults: FaultConfig) -> FaultAnswer:
        draw = self._rng.random()
        if draw < faults.html_502_share:
            return FaultAnswer(502, GATEWAY_502, HTML)
        if draw < faults.html_502_share + (1 - faults.html_502_share) / 2:
            return FaultAnswer(500, ERROR_500, JSON)
        return FaultAnswer(503, b"", None)
