"""`athena-sync subscriptions {status|create|delete}` against the sandbox over HTTP, Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from sandbox import SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from worker.cli import cli
from worker.db import upgrade

GOOD, OTHER, FORBIDDEN = "195900", "195901", "1128700"
SUBSCRIPTION = "/v1/{practiceid}/appointments/changed/subscription"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    config = SandboxConfig(seed=4, appointments=100, days=20, practices=(GOOD, OTHER))
    with serve_sandbox(config) as started:
        yield started


@pytest.fixture
def env(server: SandboxServer, fresh_pg_url: str) -> dict[str, str]:
    upgrade(fresh_pg_url)
    return {
        "DATABASE_URL": fresh_pg_url,
        "ATHENA_BASE_URL": server.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": "sandbox-secret",
        "ATHENA_PRACTICE_IDS": f"{GOOD},{OTHER}",
        "LOG_LEVEL": "ERROR",
        "COLUMNS": "250",
    }


def _run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["subscriptions", *args], env=env)


def _state(env: dict[str, str], practice: str) -> dict[str, Any]:
    engine = sa.create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT * FROM source_state WHERE practice_id = :p"), {"p": practice}
            ).one()
            return dict(row._mapping)
    finally:
        engine.dispose()


def _status(server: SandboxServer, practice: str) -> dict[str, Any]:
    found: dict[str, Any] = server.sandbox.store(practice).feed.status()
    return found


def test_status_create_and_delete(server: SandboxServer, env: dict[str, str]) -> None:
    status = _run(env, "status")
    assert status.exit_code == 0, status.output
    assert status.output.count("none (status INACTIVE, no events)") == 2
    assert f"athena-sync subscriptions create --practice {GOOD}" in status.output
    assert _state(env, GOOD)["subscription"] == "none"

    created = _run(env, "create", "--practice", GOOD)
    assert created.exit_code == 0, created.output
    assert "subscription asked for every event" in created.output
    assert _status(server, GOOD)["status"] == "ACTIVE"
    assert _status(server, OTHER)["status"] == "INACTIVE"
    state = _state(env, GOOD)
    assert state["subscribe_requested_at"] is not None
    assert state["subscription_checked_at"] is None  # the next scheduled run checks it again

    both = _run(env, "create", "--practice", OTHER, "--event", "CheckIn", "--event", "CheckOut")
    assert both.exit_code == 0 and "asked for CheckIn, CheckOut" in both.output
    assert [e["eventname"] for e in _status(server, OTHER)["subscriptions"]] == [
        "CheckIn",
        "CheckOut",
    ]
    partial = _run(env, "status", "--practice", OTHER)
    said = "partial (status Partial, missing ScheduleAppointment, UpdateAppointment"
    assert said in partial.output
    assert "subscribe every event" in partial.output
    active = _run(env, "status", "--practice", GOOD, "--event", "CheckOut")
    assert "ACTIVE: appointments come from the changed-data feed" in active.output

    deleted = _run(env, "delete", "--practice", OTHER, "--event", "CheckIn")
    assert deleted.exit_code == 0 and "status Partial, 1 event(s)" in deleted.output
    missing = _run(env, "status", "--practice", OTHER, "--event", "CheckIn")
    assert "partial (status Partial, missing CheckIn)" in missing.output
    gone = _run(env, "delete", "--practice", GOOD)
    assert gone.exit_code == 0 and "status INACTIVE, no events" in gone.output
    assert _status(server, GOOD)["status"] == "INACTIVE"
    assert _state(env, GOOD)["subscription"] == "none"
    counts = server.stats()["requests"][SUBSCRIPTION]
    assert counts == {"200": sum(counts.values())}
    assert server.stats()["requests"][f"{SUBSCRIPTION}/events"] == {"200": 1}  # the partial one


def test_a_refused_request_fails_the_row_and_the_exit_code(
    server: SandboxServer, env: dict[str, str]
) -> None:
    result = _run(env, "create", "--practice", FORBIDDEN, "--practice", GOOD)
    assert result.exit_code == 1
    assert "failed: not authorized: 401" in result.output
    assert _status(server, GOOD)["status"] == "ACTIVE"
    bad = _run(env, "create", "--practice", GOOD, "--event", "NoSuchEvent")
    assert bad.exit_code == 1 and "Invalid eventname." in bad.output
