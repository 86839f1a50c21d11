"""Running a unit under its lease, so no two triggers (beat, manual, redelivery) overlap."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from sqlalchemy.orm import Session

from worker.leases import HeldLease, Holder, LeaseLost, Leases
from worker.store.fences import claim_fence
from worker.store.runs import Counts, RunResult
from worker.sync.job import FenceHook, ProgressHook, SyncContext
from worker.sync.runner import run_unit, skip_unit
from worker.units import Unit

log = structlog.get_logger()

UnitRunner = Callable[[SyncContext, Unit], RunResult]


@dataclass(frozen=True)
class LeaseWait:
    """Wait (bounded) for a unit's lease held by another trigger when ``needed`` says the rest
    of the plan needs that unit now (the CLI: departments of a practice with none stored yet)."""

    seconds: float
    needed: Callable[[SyncContext, Unit], bool]
    on_wait: Callable[[Unit, Holder, float], None] | None = None
    """Told once, when the wait begins: the unit, who holds it, how long we wait at most."""
    sleep: Callable[[float], None] = time.sleep


def run_leased(
    ctx: SyncContext, leases: Leases, unit: Unit, *, wait: LeaseWait | None = None
) -> RunResult:
    """Run the unit unless another trigger is running it (then record it as skipped), first
    waiting for its lease, polling with backoff, when ``wait`` says the unit is needed."""
    deadline, pause, patience = 0.0, 0.2, None
    while True:
        with leases.hold(unit.key, owner=ctx.task_id or uuid.uuid4().hex) as held:
            if held is not None:
                return _run_held(ctx, held, unit)
        holder = leases.holder(unit.key)
        if patience is None:  # asked once, when the lease is first found taken
            patience = wait.seconds if wait and wait.needed(ctx, unit) else 0.0
            deadline = time.monotonic() + patience
            if wait and wait.on_wait and holder and patience:
                wait.on_wait(unit, holder, patience)
        left = deadline - time.monotonic()
        if wait is None or left <= 0:
            who = f"task {holder.owner} (token {holder.token})" if holder else "another task"
            waited = f" after waiting {patience:g} s" if patience else ""
            return skip_unit(ctx, unit, f"already running: lease held by {who}{waited}")
        if holder is not None:  # (None: released meanwhile, try again at once)
            log.info("lease.waiting", unit=unit.key, holder=holder.owner, left=round(left, 1))
            wait.sleep(min(pause, left, holder.ttl_ms / 1000 + 0.05))
            pause = min(pause * 2, 5.0)  # backoff, never sleeping past the holder's expiry


def _run_held(ctx: SyncContext, held: HeldLease, unit: Unit) -> RunResult:
    log.info("lease.acquired", unit=unit.key, token=held.token)
    try:
        fenced = replace(ctx, on_progress=_fenced(held, ctx), fence=_fence(held, ctx))
        return run_unit(fenced, unit)
    except LeaseLost as exc:
        return RunResult(unit, None, "skipped", error=str(exc))


def leased_runner(leases: Leases, *, wait: LeaseWait | None = None) -> UnitRunner:
    """``run_unit`` that takes the unit's lease first (for the CLI and replay with Redis)."""
    return lambda ctx, unit: run_leased(ctx, leases, unit, wait=wait)


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
