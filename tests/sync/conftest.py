"""Fixtures for end-to-end sync tests: the sandbox over loopback HTTP, a migrated database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox import FaultConfig, SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from worker.db import make_engine, upgrade
from worker.runtime import Runtime, open_runtime
from worker.settings import Settings, settings_from_env
from worker.store.runs import RunResult
from worker.sync.plan import SyncRequest, default_window, expand_resources, run_request

ANCHOR = date(2026, 10, 20)
PRACTICE = "195900"
FORBIDDEN = "1128700"


def sandbox_config(**changes: Any) -> SandboxConfig:
    """A small, fixed data set: anchor before the November DST change."""
    base: dict[str, Any] = {
        "seed": 11,
        "anchor_date": ANCHOR,
        "departments": 5,
        "providers": 8,
        "appointment_types": 10,
        "appointments": 600,
        "days": 45,
    }
    base.update(changes)
    return SandboxConfig(**base)


def settings_for(server: SandboxServer, database_url: str, **env: str) -> Settings:
    """Settings that point the client at the sandbox; fast retries, generous budget. Appointments
    are read one department per request unless a test asks for the multi-department listing
    (``SYNC_MULTI_DEPARTMENT=true``, the product's default: ``test_multi_department.py``)."""
    values = {
        "SYNC_MULTI_DEPARTMENT": "false",
        "DATABASE_URL": database_url,
        "ATHENA_BASE_URL": server.url,
        "ATHENA_CLIENT_ID": server.config.client_id,
        "ATHENA_CLIENT_SECRET": server.config.client_secret,
        "ATHENA_PRACTICE_IDS": PRACTICE,
        "ATHENA_RATE_LIMIT_RPS": "1000",
        "ATHENA_RATE_LIMIT_BURST": "1000",
        "ATHENA_BACKOFF_BASE_SECONDS": "0.001",
        "ATHENA_BACKOFF_MAX_SECONDS": "0.01",
        "ATHENA_RETRY_AFTER_CAP_SECONDS": "0.01",
        "ATHENA_MAX_ATTEMPTS": "3",
        "REDIS_KEY_PREFIX": f"athena-sync-test-{uuid.uuid4().hex[:8]}",
    }
    values.update(env)
    return settings_from_env(values)


def served_window(server: SandboxServer, practice_id: str = PRACTICE) -> tuple[date, date]:
    """First and last appointment day the sandbox serves (DST Sundays included)."""
    days = [_day(a["date"]) for a in server.truth(practice_id)["appointments"]]
    return min(days), max(days)


def covering_window(server: SandboxServer, settings: Settings) -> tuple[date, date]:
    """The served days, widened (with a day to spare) to cover today's horizon: only a run that
    covers the horizon may advance a department's watermark, as the scheduled run does."""
    first, last = served_window(server)
    start, end = default_window(
        datetime.now(UTC).date(),
        days_back=settings.sync_days_back,
        days_ahead=settings.sync_days_ahead,
    )
    return min(first, start - timedelta(days=1)), max(last, end + timedelta(days=1))


def _day(text: str) -> date:
    return date(int(text[6:10]), int(text[0:2]), int(text[3:5]))


class Harness:
    """A sandbox, a database and a way to run syncs against them."""

    def __init__(
        self, server: SandboxServer, database_url: str, settings: Settings | None = None
    ) -> None:
        self.server = server
        self.database_url = database_url
        self.settings = settings or settings_for(server, database_url)
        self.engine = make_engine(database_url)

    def sync(
        self,
        resources: str = "all",
        *,
        mode: str = "incremental",
        practices: tuple[str, ...] = (PRACTICE,),
        settings: Settings | None = None,
    ) -> list[RunResult]:
        """Run a sync in-process, like `athena-sync sync`, and close everything after."""
        settings = settings or self.settings
        start, end = covering_window(self.server, settings)
        runtime: Runtime = open_runtime(settings)
        try:
            request = SyncRequest(
                resources=expand_resources([resources]),
                practices=practices,
                mode=mode,
                start=start,
                end=end,
            )
            return run_request(runtime.context(), request)
        finally:
            runtime.close()

    def rows(self, table: str, *where: str) -> list[dict[str, Any]]:
        """All rows of a table as dicts."""
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}{clause}"))
            ]

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value from a query."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()


def _harness(server: SandboxServer, url: str) -> Iterator[Harness]:
    upgrade(url)
    harness = Harness(server, url)
    try:
        yield harness
    finally:
        harness.engine.dispose()


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with a given config; all are stopped after the test."""
    stack: list[Any] = []

    def start(**changes: Any) -> SandboxServer:
        manager = serve_sandbox(sandbox_config(**changes))
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture
def pg(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Sandbox + fresh migrated Postgres database."""
    yield from _harness(make_sandbox(), fresh_pg_url)


@pytest.fixture
def pg_faulty(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Sandbox serving 5 malformed appointments + fresh migrated Postgres database."""
    server = make_sandbox(faults=FaultConfig(malformed_appointments=5, seed=3))
    yield from _harness(server, fresh_pg_url)
