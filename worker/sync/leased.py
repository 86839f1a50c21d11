"""Running a unit under its lease, so no two triggers (beat, manual, redelivery) overlap."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace

import structlog
from sqlalchemy.orm import Session

from worker.leases import HeldLease, LeaseLost, Leases
from worker.sync.job import FenceHook, ProgressHook, SyncContext
from worker.sync.runner import run_unit, skip_unit
from worker.sync.runs import Counts, RunResult
from worker.sync.state import claim_fence
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
            fenced = replace(ctx, on_progress=_fenced(held, ctx), fence=_fence(held, ctx))
            return run_unit(fenced, unit)
        except LeaseLost as exc:
            return RunResult(unit, None, "skipped", error=str(exc))


def leased_runner(leases: Leases) -> UnitRunner:
    """``run_unit`` that takes the unit's lease first (for the CLI and replay with Redis)."""
    return lambda ctx, unit: run_leased(ctx, leases, unit)


def _fence(held: HeldLease, ctx: SyncContext) -> FenceHook:
    """Inside each write transaction: refuse the write if a newer lease holder already wrote
    for this unit (a holder paused past its expiry cannot overwrite its successor's pages)."""

    def fence(session: Session, unit: Unit) -> None:
        if not claim_fence(session, unit.key, held.token, now=ctx.clock()):
            raise LeaseLost(unit.key, held.token)

    return fence


def _fenced(held: HeldLease, ctx: SyncContext) -> ProgressHook:
    """A progress hook, run inside each page's transaction, that aborts a stale holder."""
    inner = ctx.on_progress

    def hook(unit: Unit, counts: Counts) -> None:
        held.check()
        if inner is not None:
            inner(unit, counts)

    return hook
