"""Helpers for the changed-data feed and multi-department tests: runs as the beat makes them
(today's horizon, no ``--from``/``--to``), and the database compared with the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.athena.client import build_client
from worker.athena.transport import build_session
from worker.db import session_factory, upgrade
from worker.parse import parse_athena_datetime
from worker.runtime import open_runtime
from worker.settings import Settings
from worker.store.runs import RunResult
from worker.sync.job import ProgressHook, SyncContext
from worker.sync.plan import SyncRequest, default_window, expand_resources, run_request

# Data around today (a third of the days before it), so the horizon below leaves the oldest
# visits outside it: SYNC_DAYS_BACK is 7, the data reaches 20 days back.
DATA = {"departments": 5, "appointments": 800, "days": 60}


def make_harness(
    make_sandbox: Callable[..., SandboxServer],
    url: str,
    sandbox: dict[str, Any],
    env: dict[str, str],
) -> Iterator[Harness]:
    """A sandbox with data around today, a migrated database, settings with ``env``."""
    server = make_sandbox(anchor_date=datetime.now(UTC).date(), **{**DATA, **sandbox})
    upgrade(url)
    harness = Harness(server, url, settings_for(server, url, **env))
    try:
        yield harness
    finally:
        harness.engine.dispose()


def run(
    h: Harness,
    mode: str,
    resources: str = "appointments",
    *,
    settings: Settings | None = None,
    on_progress: ProgressHook | None = None,
) -> list[RunResult]:
    """One request as the beat sends it (over today's horizon), in-process, over HTTP."""
    runtime = open_runtime(settings or h.settings)
    try:
        ctx = replace(runtime.context(), on_progress=on_progress)
        request = SyncRequest(expand_resources([resources]), (PRACTICE,), mode)
        return run_request(ctx, request)
    finally:
        runtime.close()


def run_through(
    h: Harness,
    hook: Callable[..., None],
    mode: str = "changed",
    *,
    settings: Settings | None = None,
) -> list[RunResult]:
    """An appointments request (over today's horizon) whose HTTP responses pass through
    ``hook`` first (a ``requests`` response hook standing in for a server or gateway)."""
    settings = settings or h.settings
    http = build_session(settings)
    http.hooks["response"].append(hook)
    client = build_client(settings, session=http)
    ctx = SyncContext(client, session_factory(h.engine), settings, run_group="hooked")
    try:
        return run_request(ctx, SyncRequest(("appointments",), (PRACTICE,), mode))
    finally:
        client.close()


def stored(h: Harness) -> dict[str, tuple[str, datetime | None, str]]:
    """Live appointment rows: id -> (status, last_modified_at, local start time HH:MM)."""
    rows = h.rows("appointments", "deleted_at IS NULL")
    return {
        r["appointment_id"]: (r["status"], r["last_modified_at"], r["local_time"].strftime("%H:%M"))
        for r in rows
    }


def truth(h: Harness) -> dict[str, tuple[str, datetime | None, str]]:
    """The sandbox's appointments in the same shape."""
    return {
        a["appointmentid"]: (
            a["appointmentstatus"],
            parse_athena_datetime(a["lastmodified"], "lastmodified"),
            a["starttime"],
        )
        for a in h.server.truth(PRACTICE)["appointments"]
    }


def in_horizon(h: Harness, ids: set[str]) -> set[str]:
    """The ids whose appointment day lies in today's horizon (what a scheduled poll reads)."""
    first, last = default_window(
        datetime.now(UTC).date(),
        days_back=h.settings.sync_days_back,
        days_ahead=h.settings.sync_days_ahead,
    )
    days = {
        a["appointmentid"]: datetime.strptime(a["date"], "%m/%d/%Y").date()
        for a in h.server.truth(PRACTICE)["appointments"]
    }
    return {i for i in ids if first <= days[i] <= last}


def changed_ids(change: dict[str, Any]) -> set[str]:
    """Every appointment id a sandbox mutation changed (deletions aside)."""
    ids = {m["appointmentid"] for m in change["modified"]}
    for kind in ("cancelled", "added", "checkin", "checkout", "cancel_past"):
        ids |= set(change[kind])
    return ids


def source(h: Harness) -> dict[str, Any]:
    """The practice's ``source_state`` row for appointments."""
    rows = h.rows("source_state", f"practice_id = '{PRACTICE}'", "resource = 'appointments'")
    return rows[0] if rows else {}


def runs(h: Harness, mode: str) -> list[dict[str, Any]]:
    """The ``sync_runs`` rows of appointments in a mode, oldest first."""
    with h.engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT * FROM sync_runs WHERE resource = 'appointments' AND mode = :mode "
                "ORDER BY id"
            ),
            {"mode": mode},
        )
        return [dict(r._mapping) for r in found]


def requests_to(h: Harness, path: str, status: str = "200") -> int:
    """Answers the sandbox gave on ``/v1/{practiceid}{path}`` with ``status``."""
    counts = h.server.stats()["requests"].get(f"/v1/{{practiceid}}{path}", {})
    return int(counts.get(status, 0))
