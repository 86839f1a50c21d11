"""A process killed between a destructive feed read and its commit loses nothing (issue 14).

The feed marks what it serves as processed, so the changes of a read whose process dies before
committing are gone from the feed. A real ``athena-sync sync appointments --mode changed``
process reads them; the test holds a lock on ``appointments`` so the process is stuck writing
the page (the answer has arrived, the transaction has not committed) and kills it there with
SIGKILL. The next run finds the marker the killed one committed before reading, reads that span
again without marking (``showprocessed…``), and the changes land.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import changed_ids, make_harness, run, source, stored, truth

BIN = Path(sys.executable).parent


@pytest.fixture
def fed(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        run(h, "changed")
        yield h


def _env(h: Harness) -> dict[str, str]:
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": h.database_url,
        "ATHENA_BASE_URL": h.server.url,
        "ATHENA_CLIENT_ID": h.server.config.client_id,
        "ATHENA_CLIENT_SECRET": h.server.config.client_secret,
        "ATHENA_PRACTICE_IDS": PRACTICE,
        "LOG_LEVEL": "ERROR",
    }


def _blocked_backends(h: Harness) -> list[int]:
    """Backends of the test database waiting for a lock (the killed process's page write)."""
    with h.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                )
            ).scalars()
        )


def _wait(predicate: Callable[[], bool], what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the sync exited ({proc.returncode}) before {what}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_a_process_killed_between_read_and_commit_loses_nothing(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=4, cancel=1, checkout=1)
    waiting = len(changed_ids(change))
    before = stored(fed)
    with fed.engine.connect() as blocker:
        blocker.execute(sa.text("LOCK TABLE appointments IN SHARE MODE"))  # reads pass, writes wait
        argv = ["sync", "appointments", "--mode", "changed", "--no-progress"]
        proc = subprocess.Popen(
            [str(BIN / "athena-sync"), *argv],
            env=_env(fed),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait(
                lambda: fed.server.stats()["feeds"][PRACTICE]["unprocessed"] == 0,
                "the feed read",
                proc,
            )
            _wait(lambda: bool(_blocked_backends(fed)), "the page write", proc)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            for pid in _blocked_backends(fed):  # its connection, left waiting for our lock
                blocker.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            blocker.rollback()

    assert proc.returncode == -signal.SIGKILL
    feeds = fed.server.stats()["feeds"][PRACTICE]
    assert feeds["unprocessed"] == 0, "the killed read consumed the changes"
    assert stored(fed) == before, "nothing of the killed read was committed"
    assert source(fed)["feed_pending_since"] is not None, "its marker was committed first"

    (result,) = run(fed, "changed")
    assert result.status == "succeeded" and result.counts.fetched >= waiting
    after, expected = stored(fed), truth(fed)
    for ident in changed_ids(change):
        assert after[ident] == expected[ident] != before.get(ident), ident
    assert source(fed)["feed_pending_since"] is None
