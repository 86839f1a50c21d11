"""An empty answer from a multi-department listing marks nothing of the departments holding live
appointments in its window: each is read alone, at ``/appointments/booked`` with its one
``departmentid`` (never every ``departmentid`` there: it takes one), before anything is marked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import requests

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.athena.client import build_client
from worker.athena.transport import build_session
from worker.db import make_engine, session_factory, upgrade
from worker.runtime import Runtime
from worker.sync.plan import SyncRequest, expand_resources, run_request

MULTI = "/appointments/booked/multipledepartment"
BOOKED = "/appointments/booked"


class EmptyOnce:
    """A gateway answering the first multi-department listing with ``{"totalcount": 0}``; it
    notes the path and ``departmentid`` values of every appointments request after that."""

    def __init__(self) -> None:
        self.emptied = False
        self.after: list[tuple[str, list[str]]] = []

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        url = requests.utils.urlparse(response.url)
        path = url.path
        if "/appointments/booked" not in path:
            return
        if self.emptied:
            asked = parse_qs(url.query).get("departmentid", [])
            self.after.append((path.split(f"/v1/{PRACTICE}", 1)[1], asked))
        elif path.endswith(MULTI):
            self.emptied = True
            response._content = b'{"totalcount": 0, "appointments": []}'


def run(h: Harness, mode: str, hook: Callable[..., None] | None = None) -> list[Any]:
    session = build_session(h.settings)
    if hook is not None:
        session.hooks["response"].append(hook)
    engine = make_engine(h.settings.database_url)
    client = build_client(h.settings, session=session)
    runtime = Runtime(h.settings, engine, session_factory(engine), client)
    try:
        request = SyncRequest(expand_resources(["appointments"]), (PRACTICE,), mode)
        return run_request(runtime.context(), request)
    finally:
        runtime.close()


def test_an_empty_multi_department_answer_is_checked_one_department_at_a_time(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    server = make_sandbox(anchor_date=datetime.now(UTC).date(), departments=3)
    upgrade(fresh_pg_url)
    settings = settings_for(
        server, fresh_pg_url, SYNC_MULTI_DEPARTMENT="true", SYNC_DAYS_BACK="20",
        SYNC_DAYS_AHEAD="35", SYNC_CLOCK_SKEW_SECONDS="0",
    )  # fmt: skip
    h = Harness(server, fresh_pg_url, settings)
    try:
        h.sync("departments")
        run(h, "incremental")
        live = h.scalar("SELECT count(*) FROM appointments WHERE deleted_at IS NULL")
        assert live > 0
        hook = EmptyOnce()
        results = run(h, "reconcile", hook)
        assert hook.emptied and {r.status for r in results} == {"succeeded"}
        # The emptied window's departments holding appointments, each alone (it takes one).
        first = min(r.unit.window_start for r in results)
        holding = h.rows("appointments", f"local_date <= DATE '{first}' + 30")
        alone = sorted(asked for path, asked in hook.after if path == BOOKED)
        assert alone == sorted([d] for d in {r["department_id"] for r in holding}), alone
        assert h.scalar("SELECT count(*) FROM appointments WHERE deleted_at IS NULL") == live
        assert sum(r.counts.deleted for r in results) == 0
    finally:
        h.engine.dispose()
