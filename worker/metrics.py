"""The instrumentation seam: what the client and the engine report, and where it goes.

The client and the unit runner call the functions here (one line at each seam); they go to the
installed :class:`Sink`. By default that is :data:`NULL`, which does nothing: a CLI run, a test or
a worker without ``METRICS_PORT`` pays one function call per request and records nothing. A
worker with ``METRICS_PORT`` installs the Prometheus sink (``worker.observability``) before its pool
forks. This module never imports ``prometheus_client``.

Labels carry ids only (practice, resource, endpoint template, HTTP status): never a record's
field, a query parameter or anything a patient could be found by.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, Protocol, TypeVar

# Outcomes of ``athena_sync_records_total`` (the Counts fields of the same names).
OUTCOMES = ("inserted", "updated", "unchanged", "dead_lettered", "deleted")
_ID_SEGMENT = re.compile(r"^\d+$")


class Sink(Protocol):
    """Where instrumentation goes (Prometheus in a worker, nothing elsewhere)."""

    def request(self, practice_id: str, endpoint: str, status: str) -> None:
        """One HTTP request sent to the API and how it ended (status or ``error``)."""

    def retry(self, practice_id: str, endpoint: str) -> None:
        """One retry of an API request."""

    def token_request(self, status: str) -> None:
        """One request to the token endpoint (status ``200`` is a mint)."""

    def rate_limit_wait(self, practice_id: str, seconds: float) -> None:
        """Time spent waiting for the request budget."""

    def unit(
        self, resource: str, mode: str, status: str, seconds: float, counts: Mapping[str, int]
    ) -> None:
        """One unit of work ended: its duration and its records by outcome."""


class NullSink:
    """Records nothing (the default)."""

    def request(self, practice_id: str, endpoint: str, status: str) -> None:
        """Nothing."""

    def retry(self, practice_id: str, endpoint: str) -> None:
        """Nothing."""

    def token_request(self, status: str) -> None:
        """Nothing."""

    def rate_limit_wait(self, practice_id: str, seconds: float) -> None:
        """Nothing."""

    def unit(
        self, resource: str, mode: str, status: str, seconds: float, counts: Mapping[str, int]
    ) -> None:
        """Nothing."""


NULL = NullSink()
_sink: Sink = NULL


def install(sink: Sink | None) -> None:
    """Send instrumentation to ``sink`` from now on (None: back to recording nothing)."""
    global _sink
    _sink = sink or NULL


def installed() -> Sink:
    """The sink in use."""
    return _sink


def endpoint_of(path: str) -> str:
    """The path's template without ids (``/appointments/123`` -> ``/appointments/{id}``): the
    ``endpoint`` label, bounded however many records are fetched one by one."""
    parts = path.split("?", 1)[0].split("/")
    return "/".join("{id}" if _ID_SEGMENT.match(p) else p for p in parts) or "/"


def request(practice_id: str, path: str, status: int | str) -> None:
    """Count one API request by practice, endpoint template and status (``error``: no answer)."""
    if _sink is not NULL:
        _sink.request(practice_id, endpoint_of(path), str(status))


def retry(practice_id: str, path: str) -> None:
    """Count one retried API request."""
    if _sink is not NULL:
        _sink.retry(practice_id, endpoint_of(path))


def token_request(status: int | str) -> None:
    """Count one token endpoint request by status."""
    _sink.token_request(str(status))


def rate_limit_wait(practice_id: str, seconds: float) -> None:
    """Add time spent waiting for a budget slot."""
    if seconds > 0:
        _sink.rate_limit_wait(practice_id, seconds)


class _Ended(Protocol):
    """What a unit runner returns (``worker.store.runs.RunResult``), as far as metrics care."""

    status: str

    @property
    def unit(self) -> Any:
        """The unit (``resource``, ``mode``)."""

    @property
    def counts(self) -> Any:
        """Its Counts (``as_dict()``)."""


P = ParamSpec("P")
R = TypeVar("R", bound=_Ended)


def unit_recorded(resource: str, mode: str, status: str) -> None:
    """A unit's outcome recorded without running it (a plan that could not make the unit:
    ``failed``), so the failure counters and alerts see it as they see a unit that ran."""
    _sink.unit(resource, mode, status, 0.0, {})


def timed_unit(run: Callable[P, R]) -> Callable[P, R]:
    """Time a unit runner ``(ctx, unit, ...) -> RunResult`` and count its records; a runner that
    raises (a time limit) counts as ``failed`` and the exception goes on."""

    @functools.wraps(run)
    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            result = run(*args, **kwargs)
        except BaseException:
            unit: Any = args[1] if len(args) > 1 else kwargs.get("unit")
            _sink.unit(unit.resource, unit.mode, "failed", time.perf_counter() - started, {})
            raise
        counts = result.counts.as_dict()
        seconds = time.perf_counter() - started
        _sink.unit(result.unit.resource, result.unit.mode, result.status, seconds, counts)
        return result

    return timed
