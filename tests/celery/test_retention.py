"""Retention: closed dead letters, old sync_runs and idle unit fences are purged; open letters,
each unit's newest run, running runs and runs a kept letter points to never are."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from models import DeadLetter, SyncRun, UnitFence
from tests.celery.conftest import Stack
from worker.db import make_engine, session_factory, upgrade
from worker.settings import settings_from_env
from worker.store.retention import Purged, purge_closed_letters, purge_expired

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def letter(
    key: str,
    state: str,
    resolved_days_ago: int | None,
    *,
    failed_days_ago: int = 90,
    run_id: int | None = None,
) -> DeadLetter:
    resolved = None if resolved_days_ago is None else NOW - resolved_days_ago * DAY
    return DeadLetter(
        kind="request",
        resource="providers",
        practice_id="195900",
        error_class="client_error",
        first_failed_at=NOW - 90 * DAY,
        last_failed_at=NOW - failed_days_ago * DAY,
        state=state,
        resolved_at=resolved,
        dedup_key=key,
        sync_run_id=run_id,
    )


def run(
    name: str,
    days_ago: int,
    *,
    resource: str = "appointments",
    mode: str = "incremental",
    dept: str | None = "1",
    window: tuple[int, int] | None = None,
    status: str = "succeeded",
) -> SyncRun:
    """A run named by its task id. ``window`` is in days from NOW; an incremental run's window
    is its horizon on the day it ran (it moves with the calendar)."""
    started = NOW - days_ago * DAY
    first, last = window or (-7 - days_ago, 90 - days_ago)
    today = NOW.date()
    return SyncRun(
        task_id=name,
        resource=resource,
        practice_id="195900",
        department_id=dept,
        mode=mode,
        window_start=None if dept is None else today + first * DAY,
        window_end=None if dept is None else today + last * DAY,
        status=status,
        started_at=started,
        finished_at=None if status == "running" else started,
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = request.getfixturevalue("fresh_pg_url") if request.param == "postgresql" else None
    engine = make_engine(url or f"sqlite:///{tmp_path / 'retention.db'}")
    upgrade(engine)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def kept(sessions: sessionmaker[Session], column: Any) -> set[Any]:
    with sessions() as session:
        return set(session.scalars(sa.select(column)))


def test_closed_letters_are_purged_and_open_ones_never(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                letter("old-resolved", "resolved", 31),
                letter("new-resolved", "resolved", 29),
                letter("old-discarded", "discarded", 90),
                letter("new-discarded", "discarded", 3),
                # discarded long ago, but the same failure is still being seen: the discard holds
                letter("discarded-still-failing", "discarded", 90, failed_days_ago=1),
                letter("old-open", "open", None),
                letter("old-replayed", "replayed", None),
            ]
        )
    with sessions.begin() as session:
        assert purge_closed_letters(session, retention_days=30, now=NOW) == 2
    assert kept(sessions, DeadLetter.dedup_key) == {
        "new-resolved",
        "new-discarded",
        "discarded-still-failing",
        "old-open",
        "old-replayed",
    }


def test_old_runs_are_purged_except_the_newest_of_each_unit(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                # One incremental unit (dept 1) whose window moved every day: one unit, newest kept.
                run("inc-40", 40),
                run("inc-39", 39),
                run("inc-35", 35),
                # Reconcile windows shift by a day every day: a department's nightly reconciles
                # keep its newest run (and newest success), not one run per window for ever.
                run("rec-a-40", 40, mode="reconcile", window=(-50, -20)),
                run("rec-b-40", 40, mode="reconcile", window=(-19, 11)),
                run("rec-b-36", 36, mode="reconcile", window=(-15, 15)),
                run("rec-a-35", 35, mode="reconcile", window=(-45, -15), status="failed"),
                # A listing: the old run goes, the recent ones stay.
                run("prov-40", 40, resource="providers", mode="full", dept=None),
                run("prov-10", 10, resource="providers", mode="full", dept=None),
                run("prov-1", 1, resource="providers", mode="full", dept=None),
                # Never purged: a run still running, and a run an open letter points to.
                run("inc2-running-50", 50, dept="2", status="running"),
                run("inc2-cited-45", 45, dept="2", status="failed"),
                run("inc2-40", 40, dept="2", status="skipped"),
                run("inc2-1", 1, dept="2"),
            ]
        )
    with sessions.begin() as session:
        cited = session.scalar(sa.select(SyncRun.id).where(SyncRun.task_id == "inc2-cited-45"))
        session.add(letter("open-letter", "open", None, run_id=cited))
    with sessions.begin() as session:
        settings = settings_from_env({"SYNC_RUNS_RETENTION_DAYS": "30"})
        purged = purge_expired(session, settings=settings, now=NOW)
    assert purged == Purged(letters=0, runs=6, fences=0)
    assert kept(sessions, SyncRun.task_id) == {
        "inc-35",
        "rec-a-35",  # the newest reconcile of department 1 (failed)
        "rec-b-36",  # its newest successful one
        "prov-10",
        "prov-1",
        "inc2-running-50",
        "inc2-cited-45",
        "inc2-1",
    }


def test_letters_go_first_so_the_runs_only_they_cited_go_too(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add_all([run("old", 40), run("newest", 35)])
    with sessions.begin() as session:
        old = session.scalar(sa.select(SyncRun.id).where(SyncRun.task_id == "old"))
        session.add(letter("resolved", "resolved", 31, run_id=old))
    with sessions.begin() as session:
        purged = purge_expired(session, settings=settings_from_env({}), now=NOW)
    assert purged == Purged(letters=1, runs=1, fences=0)
    assert kept(sessions, SyncRun.task_id) == {"newest"}


def test_fences_of_units_not_written_for_the_retention_are_purged(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        session.add_all(
            [
                UnitFence(
                    unit_key="appointments:195900:reconcile:dept=1:2026-04-01..2026-04-30",
                    token=7,
                    updated_at=NOW - 31 * DAY,
                ),
                UnitFence(
                    unit_key="appointments:195900:incremental:dept=1", token=9, updated_at=NOW - DAY
                ),
            ]
        )
    with sessions.begin() as session:
        settings = settings_from_env({"SYNC_RUNS_RETENTION_DAYS": "30"})
        assert purge_expired(session, settings=settings, now=NOW).fences == 1
    assert kept(sessions, UnitFence.unit_key) == {"appointments:195900:incremental:dept=1"}


@pytest.mark.slow
def test_the_periodic_replay_task_purges_and_reports_each_count(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(SYNC_RUNS_RETENTION_DAYS="20", DEAD_LETTER_RETENTION_DAYS="10")
    now = datetime.now(UTC)
    with Session(stack.engine) as session, session.begin():
        old = now - 25 * DAY
        session.add_all(
            [
                SyncRun(
                    resource="providers",
                    practice_id="195900",
                    mode="full",
                    status="succeeded",
                    started_at=old,
                    finished_at=old,
                    task_id="old",
                ),
                SyncRun(
                    resource="providers",
                    practice_id="195900",
                    mode="full",
                    status="succeeded",
                    started_at=now - DAY,
                    finished_at=now - DAY,
                    task_id="newest",
                ),
                DeadLetter(
                    kind="request",
                    resource="providers",
                    practice_id="195900",
                    error_class="client_error",
                    first_failed_at=old,
                    last_failed_at=old,
                    state="discarded",
                    resolved_at=now - 11 * DAY,
                    dedup_key="discarded",
                ),
                DeadLetter(
                    kind="request",
                    resource="providers",
                    practice_id="195900",
                    error_class="client_error",
                    first_failed_at=old,
                    last_failed_at=old,
                    state="open",
                    dedup_key="open",
                ),  # not of a retriable class: stays open
                UnitFence(unit_key="providers:195900:full", token=1, updated_at=old),
            ]
        )
    worker = stack.start_worker("w1")
    call = (
        "import json; from tasks.sync_tasks import replay_dead_letters; "
        "print(json.dumps(replay_dead_letters.apply_async().get(timeout=60)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", call],
        env=stack.env,
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr + worker.output()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["skipped"] is False
    assert (result["purged"], result["purged_runs"], result["purged_fences"]) == (1, 1, 1)
    assert [r.task_id for r in stack.rows("SELECT task_id FROM sync_runs")] == ["newest"]
    assert [r.dedup_key for r in stack.rows("SELECT dedup_key FROM dead_letters")] == ["open"]
    assert stack.scalar("SELECT count(*) FROM unit_fences") == 0
