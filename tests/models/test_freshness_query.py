"""The freshness statement's judgement of which runs read the whole horizon, on each dialect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from models import SyncRun
from worker.store.freshness import Horizon
from worker.store.freshness_query import read_facts

LATE = datetime(2026, 11, 3, 23, 30, tzinfo=UTC)  # late in the UTC day the horizon is taken of
DAY = LATE.date()


def _run(resource: str, mode: str, department: str | None, window: tuple[date, date] | None):
    start, end = window or (None, None)
    return SyncRun(
        resource=resource,
        practice_id="195900",
        department_id=department,
        mode=mode,
        status="succeeded",
        window_start=start,
        window_end=end,
        started_at=LATE,
        finished_at=LATE + timedelta(seconds=5),
    )


@pytest.mark.parametrize(
    ("resource", "mode", "window", "covers"),
    [
        ("appointments", "incremental", (DAY - timedelta(7), DAY + timedelta(90)), True),
        ("appointments", "incremental", (DAY - timedelta(30), DAY + timedelta(120)), True),
        ("appointments", "incremental", (DAY - timedelta(6), DAY + timedelta(90)), False),
        ("appointments", "incremental", (DAY - timedelta(7), DAY + timedelta(89)), False),
        ("appointments", "incremental", (DAY, DAY), False),  # --from D --to D
        ("appointments", "reconcile", (DAY - timedelta(7), DAY + timedelta(23)), False),
        ("appointments", "changed", None, True),
        ("providers", "full", None, True),
    ],
)
def test_a_read_counts_only_when_it_read_the_whole_horizon(
    engine, resource, mode, window, covers
) -> None:
    with Session(engine) as session:
        session.add(_run(resource, mode, None if window is None else "1", window))
        session.commit()
        (fact,) = [f for f in read_facts(session, horizon=Horizon(7, 90)) if f.kind == "read"]
    assert (fact.covers, fact.at) == (covers, LATE)
