"""Fetch-ahead: the next page is requested while the current one is mapped and written.

``fetch_ahead(make)`` runs the iterator ``make()`` returns (``client.paginate``) in a thread of
its own, at most ``depth`` items ahead of the consumer, and yields what it yields, in order. So
the HTTP round trip (and the server's work) overlaps the database write, using both cores.

- The iterator is created, advanced and closed in that thread only: the client's session,
  token and rate limiter serve one thread per listing, as they did without fetch-ahead.
- An exception the iterator raises reaches the consumer after every item before it, as the
  same exception object (with its traceback): callers see what a plain loop would show.
- When the consumer stops early (it returned, raised, or closed the generator) the thread
  fetches nothing more. It is waited for briefly; one still inside a request after that (a
  slow server, a retry's back-off) is left to finish it and exits, its result unused.
- The thread runs in a copy of the caller's context, so log events keep the bound run fields.
- While any fetch-ahead thread runs, the interpreter hands the GIL over every
  ``SWITCH_INTERVAL_SECONDS`` (0.5 ms) instead of every 5 ms: the writing thread wakes from each
  Postgres round trip (six per page) while this one maps, and waited up to 5 ms for the GIL each
  time (~10% of a full load's wall time, measured with ``python -m bench``).
"""

from __future__ import annotations

import contextvars
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

log = structlog.get_logger()

T = TypeVar("T")
JOIN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_DONE = object()
SWITCH_INTERVAL_SECONDS = 0.0005


class _SwitchInterval:
    """The interpreter's switch interval shortened while any fetch-ahead thread runs, restored
    (to what it was before the first) when the last one ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._before = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(min(self._before, SWITCH_INTERVAL_SECONDS))
            self._running += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._before)


_switching = _SwitchInterval()


def fetch_ahead(make: Callable[[], Iterator[T]], *, depth: int = 1) -> Generator[T, None, None]:
    """Yield what ``make()`` yields, produced by a thread up to ``depth`` items ahead."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
    room = threading.Semaphore(depth)  # items the producer may fetch before they are taken
    stop = threading.Event()
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run,
        args=(_produce, make, ready, room, stop),
        daemon=True,
        name="fetch-ahead",
    )
    _switching.__enter__()
    try:
        thread.start()
    except BaseException:
        _switching.__exit__()
        raise
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            room.release()  # fetch the next one while this one is used
            yield item
    finally:
        stop.set()
        room.release()  # wake a producer waiting for room, so it sees the stop
        thread.join(JOIN_GRACE_SECONDS)
        _switching.__exit__()
        if thread.is_alive():
            log.warning("sync.fetch_ahead_abandoned", waited_seconds=JOIN_GRACE_SECONDS)


def _produce(
    make: Callable[[], Iterator[Any]],
    ready: queue.SimpleQueue[Any],
    room: threading.Semaphore,
    stop: threading.Event,
) -> None:
    """The thread's loop: wait for room, fetch one item, hand it over; stop when told."""
    items: Iterator[Any] | None = None
    try:
        items = make()
        while True:
            room.acquire()
            if stop.is_set():
                return
            try:
                item = next(items)
            except StopIteration:
                ready.put(_DONE)
                return
            ready.put(item)
    except BaseException as exc:  # handed to the consumer, which raises it in its own thread
        ready.put(_Failure(exc))
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
