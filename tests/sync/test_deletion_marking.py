"""Deletion marking under change: a read that did not hold still is recorded as deferred, and a
reconcile never marks deleted what an incremental run of the same department wrote meanwhile."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from rich.console import Console

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.cli import cli
from worker.cli.enqueue import result_from_json
from worker.cli.output import summary_table
from worker.db import upgrade
from worker.leases import Leases
from worker.runtime import open_runtime
from worker.settings import Settings
from worker.store.runs import Counts, RunResult
from worker.sync.job import ProgressHook
from worker.sync.leased import UnitRunner, leased_runner
from worker.sync.plan import SyncRequest, expand_resources, run_request
from worker.units import Unit

# One department and fewer days than SYNC_WINDOW_DAYS: a reconcile is a single unit whose
# scope holds every appointment, so any appointment added or deleted is inside it.
ONE_UNIT = {"departments": 1, "appointments": 120, "days": 20}


@pytest.fixture
def h(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    server = make_sandbox(**ONE_UNIT)
    upgrade(fresh_pg_url)
    harness = Harness(
        server, fresh_pg_url, settings_for(server, fresh_pg_url, ATHENA_PAGE_LIMIT="25")
    )
    try:
        yield harness
    finally:
        harness.engine.dispose()


def run(
    h: Harness,
    mode: str,
    *,
    resources: str = "appointments",
    settings: Settings | None = None,
    on_progress: ProgressHook | None = None,
    runner: UnitRunner | None = None,
) -> list[RunResult]:
    """A sync of the sandbox's configured days, with its own client and engine (as another
    process would have)."""
    config = h.server.config
    runtime = open_runtime(settings or h.settings)
    try:
        request = SyncRequest(
            expand_resources([resources]), (PRACTICE,), mode, config.first_day, config.last_day
        )
        context = runtime.context(on_progress=on_progress)
        return run_request(context, request, **({"run": runner} if runner else {}))
    finally:
        runtime.close()


def served_in_range(h: Harness) -> int:
    """Appointments the sandbox serves on the days a run covers (its DST Sundays are outside)."""
    config = h.server.config
    days = (
        datetime.strptime(a["date"], "%m/%d/%Y").date() for a in h.server.truth()["appointments"]
    )
    return sum(1 for day in days if config.first_day <= day <= config.last_day)


def cli_runs(h: Harness) -> str:
    """`athena-sync runs` for the appointments, as a user sees it."""
    env = {"DATABASE_URL": h.database_url, "LOG_LEVEL": "ERROR"}
    result = CliRunner().invoke(cli, ["runs", "--resource", "appointments"], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def run_line(output: str, run_id: int | None) -> str:
    [line] = [line for line in output.splitlines() if re.match(rf"\W*{run_id}\W", line)]
    return line


def test_a_reconcile_whose_listing_moved_is_recorded_as_deferring_its_deletions(h: Harness) -> None:
    run(h, "incremental", resources="all")
    change: dict[str, Any] = {}

    def delete_one_after_the_first_page(unit: Unit, counts: Counts) -> None:
        if unit.mode == "reconcile" and not change:
            change.update(h.server.mutate(PRACTICE, delete=1, seed=7))

    [moved] = run(h, "reconcile", on_progress=delete_one_after_the_first_page)
    [gone] = change["deleted"]
    assert (moved.status, moved.counts.deleted, moved.counts.deletions_deferred) == (
        "succeeded",
        0,
        True,
    )
    # Succeeded, yet the appointment deleted upstream is still live: the run says so.
    assert h.rows("appointments", f"appointment_id = '{gone}'")[0]["deleted_at"] is None
    assert h.rows("sync_runs", f"id = {moved.run_id}")[0]["deletions_deferred"] is True
    assert "(deferred)" in run_line(cli_runs(h), moved.run_id)
    # The CLI summary and the Celery result (the --wait path) carry it too.
    console = Console(record=True, width=200)
    console.print(summary_table([moved]))
    summary = console.export_text()
    assert "deletions deferred: 1 unit " in summary and "0 (deferred)" in summary
    assert moved.as_json()["deletions_deferred"] is True
    assert result_from_json(moved.as_json()).counts == moved.counts

    # A reconcile seconds later, the listing still: the row was written by the first sync less
    # than SYNC_CLOCK_SKEW_SECONDS before it began (clocks may disagree), so it is spared.
    [soon] = run(h, "reconcile")
    assert (soon.counts.deleted, soon.counts.deletions_deferred) == (0, True)
    # Later (no skew between two syncs of this one process), it is marked.
    [later] = run(h, "reconcile", settings=h.settings.with_overrides(sync_clock_skew_seconds=0))
    assert (later.counts.deleted, later.counts.deletions_deferred) == (1, False)
    assert h.rows("appointments", f"appointment_id = '{gone}'")[0]["deleted_at"] is not None
    assert h.rows("sync_runs", f"id = {later.run_id}")[0]["deletions_deferred"] is False
    assert "(deferred)" not in run_line(cli_runs(h), later.run_id)


def test_an_appointment_an_incremental_run_adds_while_a_reconcile_reads_stays_live(
    h: Harness, redis_url: str, redis_prefix: str
) -> None:
    # Both runs take their unit's lease, as workers do: the two units' leases differ.
    client = redis.Redis.from_url(redis_url)
    runner = leased_runner(Leases(client, prefix=redis_prefix, ttl=30))
    run(h, "incremental", resources="all", runner=runner)
    served = served_in_range(h)
    seen: dict[str, Counts] = {}
    added: dict[str, Any] = {}
    incremental: list[RunResult] = []

    def incremental_before_marking(unit: Unit, counts: Counts) -> None:
        # The hook runs after every page and once more, with unchanged counts, in the marking
        # step's transaction just before it marks: every page is read, nothing marked yet.
        if unit.mode == "reconcile" and not added and seen.get(unit.key) == counts:
            added.update(h.server.mutate(PRACTICE, add=1, seed=5))
            incremental.extend(run(h, "incremental", runner=runner))
        seen[unit.key] = replace(counts)

    try:
        [reconcile] = run(h, "reconcile", on_progress=incremental_before_marking, runner=runner)
    finally:
        client.close()
    [new_id] = added["added"]
    assert [(r.unit.mode, r.status, r.counts.inserted) for r in incremental] == [
        ("incremental", "succeeded", 1)
    ]
    assert h.rows("appointments", f"appointment_id = '{new_id}'")[0]["deleted_at"] is None
    # The reconcile did not see it and left it alone, saying its marking was not the last word.
    assert (reconcile.status, reconcile.counts.deleted) == ("succeeded", 0)
    assert reconcile.counts.deletions_deferred is True
    assert reconcile.counts.fetched == served
    # The next reconcile reads it, and defers nothing.
    [next_one] = run(h, "reconcile", settings=h.settings.with_overrides(sync_clock_skew_seconds=0))
    assert (next_one.counts.fetched, next_one.counts.deleted) == (served + 1, 0)
    assert next_one.counts.deletions_deferred is False
