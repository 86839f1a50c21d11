"""Gauges read from the database when Prometheus scrapes: freshness, last success, open letters.

Served by ``athena-sync metrics serve`` (one per deployment), not by the workers: every worker
would otherwise run the same queries and export the same series. Two statements per scrape
(freshness facts, open letters by kind and class), however many departments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from models import DeadLetter
from worker.logging import safe_summary
from worker.store.freshness import STATES, Freshness, Thresholds, assemble, last_successes
from worker.store.freshness_query import OPEN_LETTERS, read_facts
from worker.store.runs import utcnow

log = structlog.get_logger()


def open_letter_classes(session: Session) -> dict[tuple[str, str], int]:
    """Open dead letters by (kind, error class)."""
    rows = session.execute(
        sa.select(DeadLetter.kind, DeadLetter.error_class, sa.func.count())
        .where(DeadLetter.state.in_(OPEN_LETTERS))
        .group_by(DeadLetter.kind, DeadLetter.error_class)
    )
    return {(kind, error_class): int(n) for kind, error_class, n in rows}


class DatabaseCollector(Collector):
    """Computes the database gauges at each scrape."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        practices: Sequence[str],
        thresholds: Thresholds,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._practices = tuple(practices)
        self._thresholds = thresholds
        self._clock = clock

    def describe(self) -> list[GaugeMetricFamily]:
        """Nothing up front: registering must not query the database."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Query, then yield every gauge; ``athena_sync_database_up`` 0 when the query failed."""
        up = GaugeMetricFamily(
            "athena_sync_database_up", "1 when the last scrape could read the database"
        )
        try:
            with self._sessions() as session:
                facts = read_facts(session, self._practices, horizon=self._thresholds.horizon)
                letters = open_letter_classes(session)
        except Exception as exc:
            log.error("metrics.database_unreadable", error=safe_summary(exc))
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self._clock()
        rows = assemble(facts, practices=self._practices, thresholds=self._thresholds, now=now)
        yield from freshness_gauges(rows)
        yield _last_success(last_successes(facts))
        yield _letters(letters)


def freshness_gauges(rows: Sequence[Freshness]) -> Iterator[GaugeMetricFamily]:
    """Age (+Inf when never read) and state (0 ok, 1 warn, 2 error) per freshness row."""
    labels = ["practice", "resource", "department"]
    age = GaugeMetricFamily(
        "athena_sync_freshness_seconds",
        "Seconds since the newest successful read covering this practice x resource "
        "(x department) began; +Inf when never read",
        labels=labels,
    )
    state = GaugeMetricFamily(
        "athena_sync_freshness_state",
        "Freshness state: 0 ok, 1 warn, 2 error (FRESHNESS_WARN/ERROR_MINUTES past schedule)",
        labels=labels,
    )
    for row in rows:
        key = [row.practice_id, row.resource, row.department_id or ""]
        age.add_metric(key, math.inf if row.age_seconds is None else row.age_seconds)
        state.add_metric(key, STATES.index(row.state))
    yield age
    yield state


def _last_success(found: dict[tuple[str, str], datetime]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "athena_sync_last_success_timestamp_seconds",
        "When the newest succeeded or partial run of this practice x resource finished",
        labels=["practice", "resource"],
    )
    for (practice, resource), at in sorted(found.items()):
        gauge.add_metric([practice, resource], at.timestamp())
    return gauge


def _letters(found: dict[tuple[str, str], int]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(
        "athena_sync_dead_letters_open",
        "Dead letters not yet resolved or discarded, by kind and error class",
        labels=["kind", "error_class"],
    )
    for (kind, error_class), n in sorted(found.items()):
        gauge.add_metric([kind, error_class], n)
    return gauge
