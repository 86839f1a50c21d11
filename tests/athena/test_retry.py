"""Backoff with full jitter, Retry-After parsing and the retry loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from worker.athena.errors import FatalError, RetriableError, RetriesExhausted
from worker.athena.retry import (
    RetryPolicy,
    backoff_seconds,
    call_with_retries,
    parse_retry_after,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("30", 30.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("Wed, 01 May 2024 12:00:45 GMT", 45.0),
        ("Wed, 01 May 2024 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(base_seconds=0.5, max_seconds=4.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0), (500, 4.0)]:
        waits = [backoff_seconds(attempt, policy, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # spread over the whole range, not a fixed delay


class Flaky:
    """Fails with the given errors, then returns 'ok'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retries_until_success_and_reports_each_retry() -> None:
    slept: list[float] = []
    events: list[tuple[int, int | None, float]] = []
    flaky = Flaky(
        RetriableError("boom", status=502), RetriableError("slow", status=429, retry_after=3)
    )
    result = call_with_retries(
        flaky,
        policy=RetryPolicy(max_attempts=3, base_seconds=0.1, max_seconds=0.1),
        sleep=slept.append,
        rng=random.Random(1),
        on_retry=lambda attempt, error, wait: events.append((attempt, error.status, wait)),
    )
    assert result == "ok" and flaky.calls == 3
    assert slept[1] == 3.0  # Retry-After honoured
    assert [(a, s) for a, s, _ in events] == [(1, 502), (2, 429)]
    assert [w for _, _, w in events] == slept


def test_retry_after_is_capped() -> None:
    slept: list[float] = []
    flaky = Flaky(RetriableError("slow", status=429, retry_after=3600))
    call_with_retries(flaky, policy=RetryPolicy(retry_after_cap_seconds=9), sleep=slept.append)
    assert slept == [9]


def test_exhausted_says_how_many_attempts_and_the_last_status() -> None:
    flaky = Flaky(*[RetriableError("bad gateway", status=502, path="/x")] * 4)
    with pytest.raises(RetriesExhausted) as caught:
        call_with_retries(flaky, policy=RetryPolicy(max_attempts=4), sleep=lambda _: None)
    assert isinstance(caught.value, RetriableError)
    assert str(caught.value).startswith("gave up after 4 attempts (last status 502): bad gateway")
    assert caught.value.status == 502 and caught.value.path == "/x"
    assert flaky.calls == 4


def test_fatal_errors_are_not_retried() -> None:
    flaky = Flaky(FatalError("nope", status=400))
    with pytest.raises(FatalError):
        call_with_retries(flaky, policy=RetryPolicy(), sleep=lambda _: None)
    assert flaky.calls == 1


def test_an_inner_exhausted_budget_is_not_retried_again() -> None:
    flaky = Flaky(RetriesExhausted("token endpoint kept failing"))
    with pytest.raises(RetriesExhausted):
        call_with_retries(flaky, policy=RetryPolicy(), sleep=lambda _: None)
    assert flaky.calls == 1
