"""`athena-sync sync` on an empty database while another trigger holds the departments lease:
it waits (bounded) and then syncs, or fails naming the holder; it never ends 0 with nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from click.testing import CliRunner, Result

from sandbox import SandboxConfig
from sandbox.server import SandboxServer
from sandbox.testing import serve_sandbox
from worker.cli import cli
from worker.db import upgrade
from worker.leases import Leases
from worker.units import Unit

PRACTICE = "195900"
CONFIG = SandboxConfig(seed=2, departments=3, appointments=60, days=10)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with serve_sandbox(CONFIG) as server:
        yield server


@pytest.fixture
def env(sandbox: SandboxServer, fresh_pg_url: str, redis_url: str, redis_prefix: str) -> dict:
    upgrade(fresh_pg_url)
    return {
        "DATABASE_URL": fresh_pg_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "ATHENA_BASE_URL": sandbox.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": "sandbox-secret",
        "ATHENA_RATE_LIMIT_RPS": "500",
        "ATHENA_RATE_LIMIT_BURST": "500",
        "SYNC_LEASE_SECONDS": "5",
        "LOG_LEVEL": "ERROR",
    }


@contextmanager
def another_trigger(env: dict[str, str], *, holds_for: float) -> Iterator[None]:
    """Another trigger (a worker's fan-out) holds the practice's departments lease, renewing
    it, for ``holds_for`` seconds (or until the block ends)."""
    leases = Leases(redis.Redis.from_url(env["REDIS_URL"]), prefix=env["REDIS_KEY_PREFIX"], ttl=5)
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with leases.hold(Unit("departments", PRACTICE).key, owner="other-trigger") as held:
            assert held is not None
            holding.set()
            done.wait(holds_for)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert holding.wait(5)
    try:
        yield
    finally:
        done.set()
        thread.join(10)


def sync_appointments(env: dict[str, str], sandbox: SandboxServer) -> Result:
    """`athena-sync sync appointments` over every day the sandbox serves (DST Sundays too)."""
    days = [
        datetime.strptime(a["date"], "%m/%d/%Y").date()
        for a in sandbox.truth(PRACTICE)["appointments"]
    ]
    window = ["--from", min(days).isoformat(), "--to", max(days).isoformat()]
    args = ["sync", "appointments", "--practice", PRACTICE, *window, "--no-progress"]
    return CliRunner().invoke(cli, args, env=env)


def count(env: dict[str, str], table: str) -> Any:
    engine = sa.create_engine(env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def test_the_cli_waits_for_departments_held_by_another_trigger(
    env: dict[str, str], sandbox: SandboxServer
) -> None:
    with another_trigger(env, holds_for=1.5):
        result = sync_appointments(env, sandbox)
    assert result.exit_code == 0, result.output
    assert "waiting up to 5 s for departments:195900:full" in result.output
    assert "lease held by task other-trigger" in result.output
    truth = sandbox.truth(PRACTICE)
    assert count(env, "departments") == len(truth["departments"])
    assert count(env, "appointments") == len(truth["appointments"]) > 0


def test_the_cli_fails_naming_the_holder_when_departments_stay_held(
    env: dict[str, str], sandbox: SandboxServer
) -> None:
    with another_trigger(env, holds_for=60):
        result = sync_appointments(env, sandbox)
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "no appointments planned for practice 195900" in output
    assert "lease held by task other-trigger" in output and "after waiting 5 s" in output
    assert count(env, "appointments") == 0
    assert sandbox.stats()["requests"].get("/v1/{practiceid}/departments") is None


def test_with_departments_stored_a_held_lease_is_skipped_at_once(
    env: dict[str, str], sandbox: SandboxServer
) -> None:
    args = ["sync", "departments", "--practice", PRACTICE, "--no-progress"]
    assert CliRunner().invoke(cli, args, env=env).exit_code == 0
    with another_trigger(env, holds_for=60):
        result = CliRunner().invoke(cli, args, env=env)
        appointments = sync_appointments(env, sandbox)
    assert result.exit_code == 0 and "skipped" in result.output
    assert "waiting" not in result.output, "nothing needs them now: no wait"
    assert appointments.exit_code == 0, appointments.output
    assert count(env, "appointments") == len(sandbox.truth(PRACTICE)["appointments"])
