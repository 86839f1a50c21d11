"""Backoff with full jitter, Retry-After parsing, and the one retry loop.

``sleep`` and ``rng`` are injected (like stamina's testing switch): tests pass a no-op sleep and a
seeded ``random.Random`` so retries are instant and deterministic.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from worker.athena.errors import RetriableError, RetriesExhausted
from worker.settings import Settings

T = TypeVar("T")
OnRetry = Callable[[int, RetriableError, float], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    max_attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    retry_after_cap_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """Build the policy from the validated settings."""
        return cls(
            max_attempts=max(1, settings.max_attempts),
            base_seconds=settings.backoff_base_seconds,
            max_seconds=settings.backoff_max_seconds,
            retry_after_cap_seconds=settings.retry_after_cap_seconds,
        )


def backoff_seconds(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)) for attempt 1, 2, ..."""
    exponent = min(attempt - 1, 62)
    ceiling = min(policy.max_seconds, policy.base_seconds * math.pow(2, exponent))
    return rng.uniform(0, max(0.0, ceiling))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def wait_seconds(
    attempt: int, error: RetriableError, policy: RetryPolicy, rng: random.Random
) -> float:
    """The server's Retry-After (capped) when given, else jittered backoff."""
    if error.retry_after is not None:
        return min(error.retry_after, policy.retry_after_cap_seconds)
    return backoff_seconds(attempt, policy, rng)


def exhausted(error: RetriableError, attempts: int) -> RetriesExhausted:
    """The error raised after the last attempt; says how many and what the last failure was."""
    last = f"last status {error.status}" if error.status is not None else "no response"
    return RetriesExhausted(
        f"gave up after {attempts} attempts ({last}): {error.message}",
        status=error.status,
        path=error.path,
        practice_id=error.practice_id,
        api_error=error.api_error,
        detail=error.detail,
        retry_after=error.retry_after,
        request_id=error.request_id,
    )


def call_with_retries(
    attempt_once: Callable[[], T],
    *,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """Call ``attempt_once`` until it succeeds, raises a non-retriable error, or runs out."""
    source = rng or random.Random()
    attempt = 1
    while True:
        try:
            return attempt_once()
        except RetriesExhausted:
            raise  # an inner loop (e.g. the token mint) already spent its budget
        except RetriableError as error:
            if attempt >= policy.max_attempts:
                raise exhausted(error, attempt) from error
            wait = wait_seconds(attempt, error, policy, source)
            if on_retry is not None:
                on_retry(attempt, error, wait)
            sleep(wait)
            attempt += 1
