"""fetch_ahead: items in order, errors after the items before them, nothing fetched past a stop."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest
import structlog

from worker.sync.prefetch import SWITCH_INTERVAL_SECONDS, fetch_ahead


class Source:
    """A listing of ``count`` pages that records which thread fetched what, and may fail."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count, self.fail_at = count, fail_at
        self.fetched: list[int] = []
        self.threads: set[str] = set()
        self.closed = threading.Event()

    def __call__(self) -> Iterator[int]:
        try:
            for number in range(self.count):
                self.threads.add(threading.current_thread().name)
                if number == self.fail_at:
                    raise LookupError(f"page {number} failed")
                self.fetched.append(number)
                yield number
        finally:
            self.closed.set()


def test_items_arrive_in_order_from_one_other_thread():
    source = Source(5)
    assert list(fetch_ahead(source)) == [0, 1, 2, 3, 4]
    assert source.threads == {"fetch-ahead"}
    assert source.closed.is_set()


def test_an_error_arrives_after_the_items_before_it():
    source = Source(5, fail_at=3)
    seen: list[int] = []
    with pytest.raises(LookupError, match="page 3 failed"):
        for item in fetch_ahead(source):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_a_consumer_that_stops_early_stops_the_fetching():
    source = Source(100)
    ahead = fetch_ahead(source, depth=1)
    assert next(ahead) == 0
    ahead.close()
    assert source.closed.wait(5)
    assert source.fetched in ([0], [0, 1])  # at most one page ahead was fetched


def test_a_consumer_error_stops_the_fetching():
    source = Source(100)
    with pytest.raises(RuntimeError):
        for item in fetch_ahead(source, depth=2):
            if item == 1:
                raise RuntimeError("the write failed")
    assert source.closed.wait(5)
    assert len(source.fetched) <= 4


def test_the_thread_sees_the_callers_log_context():
    bound: list[object] = []

    def source() -> Iterator[int]:
        bound.append(structlog.contextvars.get_contextvars().get("run_id"))
        yield 1

    structlog.contextvars.bind_contextvars(run_id=42)
    try:
        assert list(fetch_ahead(source)) == [1]
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
    assert bound == [42]


def test_the_gil_is_handed_over_often_while_fetching_ahead_and_as_before_after():
    """The writing thread wakes from each Postgres round trip while the fetch-ahead thread maps:
    with the default 5 ms switch interval it waited up to 5 ms for the GIL every time."""
    before = sys.getswitchinterval()
    seen: list[float] = []

    def make() -> Iterator[int]:
        for item in range(3):
            seen.append(sys.getswitchinterval())
            yield item

    first = fetch_ahead(make)
    assert next(first) == 0
    second = fetch_ahead(lambda: iter([1, 2]))
    assert list(second) == [1, 2]  # one of two ended: still short while the other runs
    assert sys.getswitchinterval() == SWITCH_INTERVAL_SECONDS
    assert list(first) == [1, 2]
    assert seen == [SWITCH_INTERVAL_SECONDS] * 3
    assert sys.getswitchinterval() == before
