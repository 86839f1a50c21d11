"""Watermarks against clocks that are wrong: a gateway ``Date`` far ahead, and a watermark stored
in the future (by an older version, or a wrong clock). Neither may stop later changes from being
read: each test ends with a change made at the API and checks it reached Postgres."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.athena.client import build_client
from worker.athena.transport import build_session
from worker.db import make_engine, session_factory, upgrade
from worker.runtime import Runtime
from worker.sync.plan import SyncRequest, expand_resources, run_request

HORIZON = {"SYNC_DAYS_BACK": "20", "SYNC_DAYS_AHEAD": "35"}
SKEW = timedelta(seconds=60)  # SYNC_CLOCK_SKEW_SECONDS' default


@pytest.fixture(params=["false", "true"], ids=["per department", "multi-department"])
def h(
    request: pytest.FixtureRequest, make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> Iterator[Harness]:
    server = make_sandbox(anchor_date=datetime.now(UTC).date(), appointments=0)
    upgrade(fresh_pg_url)
    settings = settings_for(server, fresh_pg_url, **HORIZON, SYNC_MULTI_DEPARTMENT=request.param)
    harness = Harness(server, fresh_pg_url, settings)
    try:
        yield harness
    finally:
        harness.engine.dispose()


def date_ahead(days: int) -> Callable[..., None]:
    """A response hook: a gateway whose ``Date`` runs ``days`` days ahead."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if "Date" in response.headers:
            shifted = parsedate_to_datetime(response.headers["Date"]) + timedelta(days=days)
            response.headers["Date"] = format_datetime(shifted, usegmt=True)

    return hook


def run(h: Harness, resources: str = "appointments", hook: Callable[..., None] | None = None):
    session = build_session(h.settings)
    if hook is not None:
        session.hooks["response"].append(hook)
    engine = make_engine(h.settings.database_url)
    runtime = Runtime(
        h.settings, engine, session_factory(engine), build_client(h.settings, session=session)
    )
    try:
        results = run_request(
            runtime.context(), SyncRequest(expand_resources([resources]), (PRACTICE,))
        )
    finally:
        runtime.close()
    assert {r.status for r in results} == {"succeeded"}, [r.error for r in results]
    return results


def stored_watermarks(h: Harness) -> list[datetime]:
    return [r["watermark"] for r in h.rows("sync_state", "resource = 'appointments'")]


def added_appointment_lands(h: Harness) -> None:
    change = h.server.mutate(PRACTICE, add=1)
    run(h)
    [added] = change["added"]
    assert [r["appointment_id"] for r in h.rows("appointments")] == [added]


def test_a_gateway_date_a_day_ahead_does_not_set_a_watermark_in_the_future(h: Harness) -> None:
    before = datetime.now(UTC)
    run(h, "all", hook=date_ahead(1))  # empty departments: nothing read, the read start is kept
    marks = stored_watermarks(h)
    assert marks and all(m <= datetime.now(UTC) + SKEW for m in marks), marks
    assert all(m >= before - SKEW for m in marks)
    added_appointment_lands(h)


def test_a_watermark_stored_in_the_future_is_read_past_and_replaced(h: Harness) -> None:
    run(h, "all")
    future = datetime.now(UTC) + timedelta(days=365)
    with h.engine.begin() as conn:
        conn.execute(sa.text("UPDATE sync_state SET watermark = :w"), {"w": future})
    added_appointment_lands(h)
    assert all(m <= datetime.now(UTC) + SKEW for m in stored_watermarks(h))
