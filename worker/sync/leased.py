"""Running a unit under its lease, so no two triggers (beat, manual, redelivery) overlap."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import structlog

from worker.leases import HeldLease, LeaseLost, Leases
from worker.sync.job import ProgressHook, SyncContext
from worker.sync.runner import run_unit, skip_unit
from worker.sync.runs import Counts, RunResult
from worker.sync.units import Unit

log = structlog.get_logger()

UnitRunner = Callable[[SyncContext, Unit], RunResult]


def run_leased(ctx: SyncContext, leases: Leases, unit: Unit) -> RunResult:
    """Run the unit unless another trigger is running it (then record it as skipped)."""
    with leases.hold(unit.key, owner=ctx.task_id or uuid.uuid4().hex) as held:
        if held is None:
            holder = leases.holder(unit.key)
            who = f"task {holder.owner} (token {holder.token})" if holder else "another task"
            return skip_unit(ctx, unit, f"already running: lease held by {who}")
        log.info("lease.acquired", unit=unit.key, token=held.token)
        try:
            return run_unit(replace(ctx, on_progress=_fenced(held, ctx)), unit)
        except LeaseLost as exc:
            return RunResult(unit, None, "skipped", error=str(exc))


def leased_runner(leases: Leases) -> UnitRunner:
    """``run_unit`` that takes the unit's lease first (for the CLI and replay with Redis)."""
    return lambda ctx, unit: run_leased(ctx, leases, unit)


def _fenced(held: HeldLease, ctx: SyncContext) -> ProgressHook:
    """A progress hook, run inside each page's transaction, that aborts a stale holder."""
    inner = ctx.on_progress

    def hook(unit: Unit, counts: Counts) -> None:
        held.check()
        if inner is not None:
            inner(unit, counts)

    return hook
