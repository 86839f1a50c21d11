"""A real stack per test: sandbox on loopback, a fresh Postgres database, Redis under the test's
key prefix (broker, results, leases and token all live there, so tests never share a queue), and
real ``celery worker`` / ``celery beat`` subprocesses that are always killed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from sandbox import SandboxConfig
from sandbox.server import SandboxServer
from sandbox.testing import serve_sandbox
from worker.db import upgrade

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PRACTICE = "195900"
BASE_ENV = {
    "ATHENA_CLIENT_ID": "sandbox-client",
    "ATHENA_CLIENT_SECRET": "sandbox-secret",
    "ATHENA_PRACTICE_IDS": PRACTICE,
    "ATHENA_RATE_LIMIT_RPS": "1000",
    "ATHENA_RATE_LIMIT_BURST": "1000",
    "ATHENA_RETRY_AFTER_CAP_SECONDS": "2",
    "TASK_TIME_LIMIT": "60",
    "TASK_SOFT_TIME_LIMIT": "50",
    "SYNC_LEASE_SECONDS": "5",
    # One unit per department, as these tests count them; test_feed_beat.py runs the defaults.
    "SYNC_MULTI_DEPARTMENT": "false",
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}
# `athena-sync worker` (the command object, until it is registered on the CLI group).
WORKER_COMMAND = "from worker.cli.celery_cmds import worker; worker()"
FAST_START = ("--without-gossip", "--without-mingle", "--without-heartbeat")


@dataclass
class Proc:
    """A subprocess in its own process group, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (the worker and its pool processes)."""
        with contextlib.suppress(ProcessLookupError):  # pool processes outlive a dead parent
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


@dataclass
class Stack:
    """Everything one Celery test runs against."""

    env: dict[str, str]
    sandbox: SandboxServer
    engine: sa.Engine
    redis: redis.Redis
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str, *, concurrency: int = 1, via_cli: bool = False) -> Proc:
        """``celery -A worker.app worker`` (or ``athena-sync worker``), waited until ready."""
        extra = ["-n", f"{name}@%h", *FAST_START]
        if via_cli:
            argv = [sys.executable, "-c", WORKER_COMMAND, f"--concurrency={concurrency}", *extra]
        else:
            argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.app",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                *extra,
            ]
        proc = self.spawn(name, argv)
        wait_for(lambda: " ready." in proc.output(), 30, f"{name} ready", procs=[proc])
        return proc

    def start_beat(self) -> Proc:
        """``celery beat`` with the app's real schedule, every entry due at start-up."""
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "beat",
            "--loglevel=INFO",
            "-S",
            "tests.celery.beat_scheduler:DueNowScheduler",
        ]
        return self.spawn("beat", argv)

    def celery_call(self, task: str, *, args: list[Any] | None = None) -> subprocess.Popen[bytes]:
        """``celery -A worker.app call tasks.sync_tasks.<task> --args=...`` (not waited)."""
        name = task if "." in task else f"tasks.sync_tasks.{task}"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker.app",
            "call",
            name,
            f"--args={json.dumps(args or [])}",
        ]
        return subprocess.Popen(argv, env=self.env, cwd=self.tmp, stdout=subprocess.PIPE)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``athena-sync ARGS`` with the stack's environment."""
        return subprocess.run(
            [str(BIN / "athena-sync"), *args],
            env=self.env,
            cwd=self.tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))

    def logs(self) -> str:
        return "\n".join(f"----- {p.name}\n{p.output()[-4000:]}" for p in self.procs)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, *, procs: list[Proc] | None = None
) -> None:
    """Poll until ``predicate()``; fail with the processes' logs after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for proc in procs or []:
            if proc.popen.poll() is not None:
                pytest.fail(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.output()}")
        time.sleep(0.2)
    tails = "\n".join(f"----- {p.name}\n{p.output()[-3000:]}" for p in procs or [])
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{tails}")


def truth_appointments(
    sandbox: SandboxServer, start: date, end: date
) -> set[tuple[str, str, date]]:
    """(id, department, local date) of every appointment the sandbox serves in [start, end]."""
    found = set()
    for record in sandbox.truth(PRACTICE)["appointments"]:
        day = datetime.strptime(record["date"], "%m/%d/%Y").date()
        if start <= day <= end:
            found.add((record["appointmentid"], record["departmentid"], day))
    return found


def db_appointments(stack: Stack) -> set[tuple[str, str, date]]:
    """(id, department, local date) of every live appointment row."""
    rows = stack.rows(
        "SELECT appointment_id, department_id, local_date FROM appointments "
        "WHERE deleted_at IS NULL"
    )
    return {(r[0], r[1], r[2]) for r in rows}


@pytest.fixture
def make_stack(
    fresh_pg_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., Stack]]:
    """Build the stack with a sandbox config and extra settings; tears everything down."""
    stacks: list[Stack] = []
    closers: list[Callable[[], object]] = []

    def build(config: SandboxConfig | None = None, **settings: str) -> Stack:
        served = serve_sandbox(config or SandboxConfig(departments=3, appointments=300, days=20))
        sandbox = served.__enter__()
        closers.append(lambda: served.__exit__(None, None, None))
        upgrade(fresh_pg_url)
        env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": fresh_pg_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": redis_prefix,
            "ATHENA_BASE_URL": sandbox.url,
            "ATHENA_TOKEN_URL": sandbox.url + "/oauth2/v1/token",
            **BASE_ENV,
            **settings,
        }
        engine = sa.create_engine(fresh_pg_url)
        closers.append(engine.dispose)
        client = redis.Redis.from_url(redis_url)
        closers.append(lambda: client.close())
        stack = Stack(env, sandbox, engine, client, tmp_path)
        stacks.append(stack)
        return stack

    try:
        yield build
    finally:
        for stack in stacks:
            for proc in stack.procs:
                proc.kill()
        for close in reversed(closers):
            close()


def pool_pids(worker: Proc) -> list[int]:
    """The worker's pool processes (the children of its main process)."""
    pid = worker.popen.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
