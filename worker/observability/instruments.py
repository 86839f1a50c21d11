"""The Prometheus sink: the metric objects behind :mod:`worker.metrics`.

Built once per worker, in the main process before the pool forks, after
``PROMETHEUS_MULTIPROC_DIR`` is set (``worker.observability.process``): every pool process then
writes its own values to files there, and the main process sums them when scraped.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Histogram

from worker.metrics import OUTCOMES

# Units last from a fraction of a second (a small listing) to the task time limit (30 min).
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)


class PrometheusSink:
    """Counters and a histogram, unregistered: the multiprocess collector reads their files."""

    def __init__(self) -> None:
        self.requests = Counter(
            "athena_sync_api_requests",
            "HTTP requests sent to the athenahealth API, by practice, endpoint template and "
            "status (error: no answer)",
            ("practice", "endpoint", "status"),
            registry=None,
        )
        self.retries = Counter(
            "athena_sync_api_retries",
            "API requests retried (429, 5xx, timeouts, malformed listings)",
            ("practice", "endpoint"),
            registry=None,
        )
        self.token_mints = Counter(
            "athena_sync_token_mints",
            "Requests to the OAuth token endpoint by status (200: a token was minted)",
            ("status",),
            registry=None,
        )
        self.waits = Counter(
            "athena_sync_rate_limit_wait_seconds",
            "Seconds spent waiting for the shared request budget, by practice",
            ("practice",),
            registry=None,
        )
        self.records = Counter(
            "athena_sync_records",
            "Records handled by finished units, by resource and outcome",
            ("resource", "outcome"),
            registry=None,
        )
        self.duration = Histogram(
            "athena_sync_unit_duration_seconds",
            "Duration of units of sync work, by resource, mode and final status",
            ("resource", "mode", "status"),
            buckets=DURATION_BUCKETS,
            registry=None,
        )

    def request(self, practice_id: str, endpoint: str, status: str) -> None:
        """Count one API request."""
        self.requests.labels(practice_id, endpoint, status).inc()

    def retry(self, practice_id: str, endpoint: str) -> None:
        """Count one retry."""
        self.retries.labels(practice_id, endpoint).inc()

    def token_request(self, status: str) -> None:
        """Count one token endpoint request."""
        self.token_mints.labels(status).inc()

    def rate_limit_wait(self, practice_id: str, seconds: float) -> None:
        """Add budget wait time."""
        self.waits.labels(practice_id).inc(seconds)

    def unit(
        self, resource: str, mode: str, status: str, seconds: float, counts: Mapping[str, int]
    ) -> None:
        """Observe a unit's duration; add its records by outcome."""
        self.duration.labels(resource, mode, status).observe(seconds)
        for outcome in OUTCOMES:
            if counts.get(outcome):
                self.records.labels(resource, outcome).inc(counts[outcome])
