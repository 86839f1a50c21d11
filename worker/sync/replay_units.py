"""Replaying a request letter: its unit of work, or its practice's request, again.

In-process (the CLI: a person waits for the outcome) the work runs here and settles the letter:
resolved when no unit failed (a unit ``skipped`` because another trigger holds its lease right
now is covered by that run, which letters its own failure), else reopened with ``attempts``
bumped. With ``send`` (the periodic replay; the Celery door passes ``run_unit``) nothing runs
here but a practice's departments: a unit goes to a worker, so a unit that kills its process
never kills the replay, and its letter stays ``replayed`` until the unit's own success resolves
it (``resolve_unit_letters``); a practice's request is planned again through the one fan-out
(departments here, every other unit sent) and its letter resolves once planning succeeded (each
unit's failure leaves a letter of its own). A letter still ``replayed`` when a replay picks it
again counts as a failed attempt: its replay died, or its unit did not succeed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from models import DeadLetter
from worker.store.runs import RunResult
from worker.sync.job import SyncContext
from worker.sync.plan import Send, SyncRequest, UnitRunner, default_window, fan_out, finish
from worker.sync.replay_state import ReplayOutcome, bump, resolve, set_state
from worker.units import Unit

# A unit skipped because another trigger holds its lease is covered by that trigger's run.
COVERED = ("succeeded", "partial", "skipped")


def replay_request(
    ctx: SyncContext, letter: DeadLetter, *, dry_run: bool, run: UnitRunner, send: Send | None
) -> ReplayOutcome:
    """Run (or send) the letter's unit or practice request again and settle the letter."""
    unit = current_unit(ctx, unit_of(letter))
    request = None if unit is not None else request_of(letter)
    if unit is None and request is None:
        return ReplayOutcome(letter.id, letter.kind, "none", "skipped", "no unit of work stored")
    action = _action(unit, request, sending=send is not None)
    if dry_run:
        return ReplayOutcome(letter.id, letter.kind, action, "would replay")
    started = _take(ctx, letter)
    try:
        if unit is not None and send is not None:
            task_id = send(unit)  # its own success or failure settles the letter
            return ReplayOutcome(letter.id, letter.kind, action, "sent", f"task {task_id}")
        results, sent = _work(ctx, unit, request, run=run, send=send)
    except BaseException:
        set_state(ctx, letter.id, "open")  # back in the queue, whatever stopped us
        raise
    return _settle(ctx, letter, action, results, sent, started)


def _action(unit: Unit | None, request: SyncRequest | None, *, sending: bool) -> str:
    verb = "send" if sending else "re-run"
    if unit is not None:
        return f"{verb} {unit.key}"
    assert request is not None
    what = f"{'+'.join(request.resources)} {request.mode} for practice {request.practices[0]}"
    return f"re-plan {what}" if sending else f"re-run {what}"


def _take(ctx: SyncContext, letter: DeadLetter) -> datetime:
    """Mark the letter in flight (``replayed``); when; a replay that never settled counts."""
    if letter.state == "replayed":
        # The last replay never reported back (its process died, or its sent unit did not
        # succeed): a unit that kills its process must not be replayed for ever.
        message = "its last replay did not succeed (it died or its unit failed)"
        bump(ctx, letter.id, since=ctx.clock(), message=message)
    started = ctx.clock()
    set_state(ctx, letter.id, "replayed")
    return started


def _work(
    ctx: SyncContext,
    unit: Unit | None,
    request: SyncRequest | None,
    *,
    run: UnitRunner,
    send: Send | None,
) -> tuple[list[RunResult], list[dict[str, Any]]]:
    """The results of the units run here, and the units sent to workers."""
    if unit is not None:
        return [run(ctx, unit)], []
    assert request is not None
    practice_id = request.practices[0]
    plan = fan_out(ctx, request, practice_id, run=run, send=send, retry_later=False)
    return finish(ctx, request, plan), plan.sent


def _settle(
    ctx: SyncContext,
    letter: DeadLetter,
    action: str,
    results: list[RunResult],
    sent: list[dict[str, Any]],
    started: datetime,
) -> ReplayOutcome:
    failed = [r for r in results if r.status not in COVERED]
    if failed:
        set_state(ctx, letter.id, "open")
        message = "; ".join(f"{r.unit.key}: {r.error or r.status}" for r in failed)
        bump(ctx, letter.id, since=started, message=message)
        return ReplayOutcome(letter.id, letter.kind, action, "failed", message)
    note = _note(results, sent)
    resolve(ctx, letter.id, note)
    return ReplayOutcome(letter.id, letter.kind, action, "resolved", note)


def _note(results: list[RunResult], sent: list[dict[str, Any]]) -> str:
    ids = ", ".join(str(r.run_id) for r in results)
    parts = [f"replayed by run{'s' if len(results) > 1 else ''} {ids}"] if results else []
    skipped = sum(1 for r in results if r.status == "skipped")
    if skipped:
        parts.append(f"{skipped} covered by the trigger holding their lease")
    if sent:
        parts.append(f"re-planned: {len(sent)} unit(s) sent to workers")
    return "; ".join(parts) or "nothing left to run"


def current_unit(ctx: SyncContext, unit: Unit | None) -> Unit | None:
    """An incremental unit reads its stored window widened to today's horizon: the window of
    the day it failed (maybe an explicit --from/--to) and everything a scheduled run reads now."""
    if unit is None or unit.mode != "incremental" or unit.window_start is None:
        return unit
    start, end = default_window(
        ctx.clock().date(),
        days_back=ctx.settings.sync_days_back,
        days_ahead=ctx.settings.sync_days_ahead,
    )
    return replace(
        unit,
        window_start=min(start, unit.window_start),
        window_end=max(end, unit.window_end or end),
    )


def unit_of(letter: DeadLetter) -> Unit | None:
    """The unit of work a request letter keeps (a ``run_unit`` letter or a runner's), if any."""
    args: Any = letter.task_args
    if isinstance(args, dict) and isinstance(args.get("unit"), dict):
        args = args["unit"]
    if not isinstance(args, dict) or "resource" not in args or "practice_id" not in args:
        return None
    try:
        return Unit.from_json(args)
    except (ValueError, TypeError, KeyError):
        return None


def request_of(letter: DeadLetter) -> SyncRequest | None:
    """The practice request a ``sync_practice`` letter keeps, if it parses."""
    args: Any = letter.task_args
    if not isinstance(args, dict) or not isinstance(args.get("request"), dict):
        return None
    try:
        return SyncRequest.from_practice_json(args["request"])
    except (ValueError, TypeError, KeyError):
        return None


def killed_its_process(letter: DeadLetter) -> bool:
    """The letter of a task refused after its process died on every delivery (out of memory,
    a crash): running it again would likely kill another process, so a person decides."""
    args: Any = letter.task_args
    return isinstance(args, dict) and bool(args.get("process_deaths"))
