"""How a unit ends when something other than the API stops it."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox import FaultConfig
from tests.sync.conftest import PRACTICE, Harness
from worker.leases import LeaseLost
from worker.runtime import open_runtime
from worker.sync.replay import replay_letters
from worker.sync.runner import run_unit
from worker.units import Unit


class SoftTimeLimitExceeded(Exception):
    """Stands in for celery.exceptions.SoftTimeLimitExceeded."""


def _run(h: Harness, unit: Unit, hook: Any) -> Any:
    runtime = open_runtime(h.settings)
    try:
        ctx = runtime.context(on_progress=hook)
        return run_unit(ctx, unit)
    finally:
        runtime.close()


def _raise(exc: BaseException) -> Any:
    def hook(*_: Any) -> None:
        raise exc

    return hook


def test_a_lost_lease_rolls_the_page_back_and_counts_nothing(pg: Harness) -> None:
    result = _run(pg, Unit("providers", PRACTICE), _raise(LeaseLost("providers", 7)))
    assert result.status == "skipped"
    run = pg.rows("sync_runs")[0]
    assert (run["status"], run["inserted"], run["fetched"]) == ("skipped", 0, 0)
    assert pg.rows("providers") == [], "the page rolled back with the lease"


def test_an_unexpected_error_fails_only_its_unit_with_a_letter(pg: Harness) -> None:
    result = _run(pg, Unit("providers", PRACTICE), _raise(KeyError("boom-secret-text")))
    assert (result.status, result.error_class, result.retriable) == (
        "failed",
        "internal_error",
        False,
    )
    letter = pg.rows("dead_letters")[0]
    assert letter["error_class"] == "internal_error" and letter["task_args"]["resource"] == (
        "providers"
    )
    run = pg.rows("sync_runs")[0]
    assert run["inserted"] == 0 and "KeyError" in run["error_summary"]
    assert "boom-secret-text" not in run["error_summary"], "foreign exception text is not kept"


def test_a_bug_in_mapping_on_the_fetch_thread_fails_only_its_unit(
    pg: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import worker.sync.job as job

    def broken(*_: Any, **__: Any) -> Any:
        raise ZeroDivisionError("mapping-bug-text")

    monkeypatch.setattr(job, "map_records", broken)  # mapping runs on the fetch-ahead thread
    result = _run(pg, Unit("providers", PRACTICE), None)
    assert (result.status, result.error_class) == ("failed", "internal_error")
    assert pg.rows("providers") == []
    run = pg.rows("sync_runs")[0]
    assert "ZeroDivisionError" in run["error_summary"]
    assert "mapping-bug-text" not in run["error_summary"]
    assert pg.rows("dead_letters")[0]["error_class"] == "internal_error"


def test_a_transient_error_is_retriable_and_replayed_automatically(pg: Harness) -> None:
    result = _run(pg, Unit("providers", PRACTICE), _raise(ConnectionError("redis went away")))
    assert (result.status, result.error_class, result.retriable) == ("failed", "retriable", True)


def test_a_time_limit_is_recorded_and_propagates(pg: Harness) -> None:
    with pytest.raises(SoftTimeLimitExceeded):
        _run(pg, Unit("providers", PRACTICE), _raise(SoftTimeLimitExceeded()))
    assert pg.rows("sync_runs")[0]["status"] == "failed"


def test_a_replay_that_blows_up_puts_its_letter_back_in_the_queue(pg: Harness) -> None:
    pg.sync("departments")
    pg.server.set_faults(FaultConfig(error_rate=1.0, seed=1))
    pg.sync("providers")

    def broken(ctx: Any, unit: Any) -> Any:
        raise RuntimeError("redis is down")

    runtime = open_runtime(pg.settings)
    try:
        with pytest.raises(RuntimeError):
            replay_letters(runtime.context(), all_open=True, run=broken)
    finally:
        runtime.close()
    assert pg.rows("dead_letters")[0]["state"] == "open"


def test_fencing_tokens_only_move_forward(pg: Harness) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from worker.store.fences import claim_fence

    now = datetime.now(UTC)
    with Session(pg.engine) as session, session.begin():
        assert claim_fence(session, "providers:195900:full", 5, now=now)
        assert not claim_fence(session, "providers:195900:full", 4, now=now)
        assert claim_fence(session, "providers:195900:full", 5, now=now)
        assert claim_fence(session, "providers:195900:full", 6, now=now)
        assert claim_fence(session, "departments:195900:full", 1, now=now)


def test_a_stale_lease_holder_cannot_write_after_its_successor(pg: Harness) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from worker.store.fences import claim_fence

    unit = Unit("providers", PRACTICE)
    with Session(pg.engine) as session, session.begin():  # the successor (token 10) wrote
        claim_fence(session, unit.key, 10, now=datetime.now(UTC))

    def stale_fence(session: Any, unit: Unit) -> None:
        if not claim_fence(session, unit.key, 9, now=datetime.now(UTC)):
            raise LeaseLost(unit.key, 9)

    runtime = open_runtime(pg.settings)
    try:
        ctx = runtime.context()
        ctx.fence = stale_fence
        result = run_unit(ctx, unit)
    finally:
        runtime.close()
    assert result.status == "skipped" and "token 9" in (result.error or "")
    assert pg.rows("providers") == [], "the stale holder's page was refused"
