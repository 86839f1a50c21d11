"""The instrumentation seam (pure): nothing recorded by default, endpoint templates without ids,
units timed with their records by outcome, budget waits counted."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from worker import metrics
from worker.athena.ratelimit import LocalRateLimiter
from worker.observability.process import start_worker_metrics
from worker.settings import Settings
from worker.store.runs import Counts, RunResult
from worker.units import Unit


@dataclass
class Recording:
    events: list[tuple] = field(default_factory=list)

    def request(self, practice_id: str, endpoint: str, status: str) -> None:
        self.events.append(("request", practice_id, endpoint, status))

    def retry(self, practice_id: str, endpoint: str) -> None:
        self.events.append(("retry", practice_id, endpoint))

    def token_request(self, status: str) -> None:
        self.events.append(("token", status))

    def rate_limit_wait(self, practice_id: str, seconds: float) -> None:
        self.events.append(("wait", practice_id, round(seconds, 3)))

    def unit(self, resource, mode, status, seconds, counts: Mapping[str, int]) -> None:
        self.events.append(("unit", resource, mode, status, dict(counts)))


@pytest.fixture
def recording() -> Iterator[Recording]:
    sink = Recording()
    metrics.install(sink)
    try:
        yield sink
    finally:
        metrics.install(None)


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("/appointments/booked", "/appointments/booked"),
        ("/appointments/1115851", "/appointments/{id}"),
        ("/providers/118?x=1", "/providers/{id}"),
        ("/departments", "/departments"),
    ],
)
def test_endpoints_are_templates_without_ids(path: str, endpoint: str) -> None:
    assert metrics.endpoint_of(path) == endpoint


def test_nothing_is_recorded_or_served_without_metrics_port() -> None:
    assert metrics.installed() is metrics.NULL
    assert start_worker_metrics(Settings()) is None
    assert metrics.installed() is metrics.NULL
    metrics.request("195900", "/providers", 200)  # goes nowhere, raises nothing


def test_the_seam_passes_ids_and_statuses_on(recording: Recording) -> None:
    metrics.request("195900", "/appointments/77", 429)
    metrics.retry("195900", "/appointments/77")
    metrics.token_request(200)
    metrics.rate_limit_wait("195900", 0.0)  # no wait, no event
    assert recording.events == [
        ("request", "195900", "/appointments/{id}", "429"),
        ("retry", "195900", "/appointments/{id}"),
        ("token", "200"),
    ]


def test_a_waiting_rate_limiter_reports_its_waits(recording: Recording) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = LocalRateLimiter(rate=2.0, burst=1, clock=lambda: now[0], sleep=sleep)
    limiter.acquire("195900")
    limiter.acquire("195900")
    assert recording.events == [("wait", "195900", 0.5)]


def test_a_timed_unit_reports_status_and_records(recording: Recording) -> None:
    unit = Unit("appointments", "195900", "incremental", "7")

    @metrics.timed_unit
    def run(ctx: object, unit: Unit) -> RunResult:
        return RunResult(unit, 1, "partial", Counts(inserted=3, unchanged=2, dead_lettered=1))

    @metrics.timed_unit
    def crash(ctx: object, unit: Unit) -> RunResult:
        raise TimeoutError("time limit")

    run(None, unit)
    with pytest.raises(TimeoutError):
        crash(None, unit)
    first, second = recording.events
    assert first[:4] == ("unit", "appointments", "incremental", "partial")
    assert {k: v for k, v in first[4].items() if v} == {
        "inserted": 3,
        "unchanged": 2,
        "dead_lettered": 1,
    }
    assert second == ("unit", "appointments", "incremental", "failed", {})
