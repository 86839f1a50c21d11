"""A process killed between a destructive feed read and its commit loses nothing (issue 14).

The feed marks what it serves as processed, so the changes of a read whose process dies before
committing are gone from the feed. A real ``athena-sync sync appointments --mode changed``
process reads them; the test holds a lock on ``appointments`` so the process is stuck writing
the page (the answer has arrived, the transaction has not committed) and kills it there with
SIGKILL. The next run finds the marker the killed one committed before reading, reads that span
again without marking (``showprocessed…``), and the changes land. A marker older than
``SYNC_FEED_RECOVERY_HOURS`` is not read again (athenahealth, like this sandbox, serves processed
records again for a limited time only): the gap is lettered and the listing reads the practice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sandbox import SandboxServer
from sandbox.feed import FeedQuery
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import (
    changed_ids,
    in_horizon,
    make_harness,
    run,
    source,
    stored,
    truth,
)

BIN = Path(sys.executable).parent


RETENTION = 2 * 3600  # how long the sandbox serves processed records again


@pytest.fixture
def fed(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Subscribed, loaded, the feed read once and the listing caught up with it: from here on
    the practice is read through the feed alone."""
    sandbox = {"processed_retention_seconds": RETENTION}
    for h in make_harness(make_sandbox, fresh_pg_url, sandbox, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        run(h, "changed")
        assert run(h, "incremental")  # the listing catches up with the feed once
        assert run(h, "incremental") == []
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


def _killed_between_read_and_commit(fed: Harness) -> None:
    """A real ``sync appointments --mode changed`` process killed after the feed served its
    read (and marked it processed) and before the page committed."""
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


def test_a_process_killed_between_read_and_commit_loses_nothing(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=4, cancel=1, checkout=1)
    waiting = len(changed_ids(change))
    before = stored(fed)
    _killed_between_read_and_commit(fed)
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


def test_a_marker_within_the_recovery_limit_is_read_again_hours_later(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=3, cancel=1)
    before = stored(fed)
    _killed_between_read_and_commit(fed)
    fed.server.advance_clock(90 * 60)  # SYNC_FEED_RECOVERY_HOURS is 2

    (result,) = run(fed, "changed")
    assert result.status == "succeeded" and result.counts.fetched >= 4
    after, expected = stored(fed), truth(fed)
    for ident in changed_ids(change):
        assert after[ident] == expected[ident] != before.get(ident), ident
    assert source(fed)["feed_pending_since"] is None
    assert not fed.rows("dead_letters")
    assert run(fed, "incremental") == [], "the practice stays with the feed"


def test_a_marker_past_the_recovery_limit_is_lettered_and_the_listing_reads_the_gap(
    fed: Harness,
) -> None:
    change = fed.server.mutate(PRACTICE, modify=4, cancel=1, checkout=1)
    inside = in_horizon(fed, changed_ids(change))
    outside = changed_ids(change) - inside  # the checkout at least: a visit weeks ago
    assert inside and set(change["checkout"]) <= outside
    before = stored(fed)
    _killed_between_read_and_commit(fed)
    marker = source(fed)["feed_pending_since"]
    assert marker is not None
    fed.server.advance_clock(3 * 3600)  # past SYNC_FEED_RECOVERY_HOURS (2) and the retention
    lost = FeedQuery(100, processed_from=datetime(2000, 1, 1), processed_to=datetime(2100, 1, 1))
    assert not fed.server.sandbox.store(PRACTICE).feed.read(lost).changes, "no longer served"

    (result,) = run(fed, "changed")
    assert result.status == "partial" and result.counts.dead_lettered == 1
    assert result.note and "not read again" in result.note
    assert stored(fed) == before
    (letter,) = fed.rows("dead_letters")
    assert (letter["kind"], letter["error_class"], letter["state"]) == (
        "request",
        "client_error",
        "open",
    )
    assert letter["path"] == "/appointments/changed" and letter["task_args"] is None
    start = marker - timedelta(seconds=fed.settings.sync_lastmodified_overlap_seconds)
    eastern = start.astimezone(ZoneInfo("US/Eastern")).strftime("%m/%d/%Y %H:%M:%S")
    assert letter["params"]["showprocessedstartdatetime"] == eastern
    message = letter["error_message"]
    assert f"from {eastern} to " in message and " Eastern (" in message
    assert f"({start.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z to " in message
    assert "SYNC_FEED_RECOVERY_HOURS" in message and "--mode reconcile" in message
    assert source(fed)["feed_pending_since"] is None

    # The listing reads the practice once more: every change inside the horizon lands.
    polled = run(fed, "incremental")
    assert polled and {r.status for r in polled} == {"succeeded"}
    after, expected = stored(fed), truth(fed)
    for ident in inside:
        assert after[ident] == expected[ident] != before.get(ident), ident
    assert run(fed, "incremental") == [], "then the practice is left to the feed again"
    for ident in outside:  # what the letter says a reconcile over their dates is for
        assert after.get(ident) == before.get(ident) != expected[ident], ident
    fed.sync("appointments", mode="reconcile")
    assert all(stored(fed)[ident] == expected[ident] for ident in outside)
