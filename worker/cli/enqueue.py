"""`athena-sync sync ... --enqueue [--wait]`: send the request to the Celery workers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import click
from celery.exceptions import TimeoutError as CeleryTimeout

from worker.cli.output import console, print_failures, summary_table
from worker.settings import Settings
from worker.store.runs import Counts, RunResult
from worker.sync.plan import SyncRequest
from worker.units import Unit

COUNT_FIELDS = tuple(Counts.__dataclass_fields__)
PENDING = object()  # a task not done by the deadline


def enqueue_request(
    settings: Settings, request: SyncRequest, *, wait: bool, timeout: float | None = None
) -> int:
    """Send one ``sync_practice`` task per practice; with ``wait``, print every unit's result
    (with ``timeout``, stop waiting then and list the tasks still pending or running)."""
    settings.require_redis_url()
    from tasks.sync_tasks import sync_practice  # the Celery app loads its configuration here

    sent = []
    for practice_id in request.practices:
        result = sync_practice.apply_async(kwargs=_practice_kwargs(request, practice_id))
        click.echo(f"enqueued sync_practice practice={practice_id} task={result.id}")
        sent.append((practice_id, result))
    if not wait:
        return 0
    deadline = Deadline(timeout)
    results: list[RunResult] = []
    pending: list[str] = []
    for practice_id, practice_result in sent:
        results.extend(_wait_practice(practice_id, practice_result, deadline, pending))
    if results or not pending:
        console.print(summary_table(results))
    print_failures(results)
    if pending:
        click.echo(
            f"timed out after {timeout:g} s; still pending or running on the workers "
            f"(not cancelled):",
            err=True,
        )
        for line in pending:
            click.echo(f"  {line}", err=True)
        return 1
    return 1 if any(r.status == "failed" for r in results) else 0


@dataclass(frozen=True)
class Deadline:
    """When ``--wait`` gives up (never, without ``--timeout``)."""

    seconds: float | None
    start: float = field(default_factory=time.monotonic)

    def outcome(self, result: Any) -> Any:
        """The task's result, or PENDING when it is not ready by the deadline."""
        if self.seconds is None:
            return result.get(propagate=False)
        left = self.start + self.seconds - time.monotonic()
        if left <= 0:  # Celery reads timeout=0 as "no limit": only look
            return result.get(propagate=False) if result.ready() else PENDING
        try:
            return result.get(propagate=False, timeout=left)
        except CeleryTimeout:
            # Stop listening for it now: left to interpreter exit, Celery's clean-up fails loudly.
            result.backend.remove_pending_result(result)
            return PENDING


def _practice_kwargs(request: SyncRequest, practice_id: str) -> dict[str, Any]:
    return {
        "practice_id": practice_id,
        "resources": list(request.resources),
        "mode": request.mode,
        "start": request.start.isoformat() if request.start else None,
        "end": request.end.isoformat() if request.end else None,
    }


def _wait_practice(
    practice_id: str, practice_result: Any, deadline: Deadline, pending: list[str]
) -> list[RunResult]:
    """The units the fan-out ran itself, then each unit task's result as it finishes; what is
    not done by the deadline goes to ``pending``."""
    plan = deadline.outcome(practice_result)
    if plan is PENDING:
        pending.append(
            f"practice={practice_id} task={practice_result.id} sync_practice "
            f"{practice_result.state} (its units are not planned yet)"
        )
        return []
    if not isinstance(plan, dict):
        click.echo(f"task {practice_result.id} failed: {plan!r}", err=True)
        return []
    results = [result_from_json(r) for r in plan["ran"]]
    for result in results:
        _echo(practice_result.id, result)
    for entry in plan["sent"]:
        unit_result = practice_result.app.AsyncResult(entry["task_id"])
        outcome = deadline.outcome(unit_result)
        if outcome is PENDING:
            unit = Unit.from_json(entry["unit"])
            pending.append(f"task={entry['task_id']} unit={unit.key} {unit_result.state}")
            continue
        if isinstance(outcome, dict):
            result = result_from_json(outcome)
        else:
            result = RunResult(Unit.from_json(entry["unit"]), None, "failed", error=repr(outcome))
        _echo(entry["task_id"], result)
        results.append(result)
    return results


def _echo(task_id: str, result: RunResult) -> None:
    counts = " ".join(f"{name}={getattr(result.counts, name)}" for name in COUNT_FIELDS)
    click.echo(f"task={task_id} unit={result.unit.key} status={result.status} {counts}")


def result_from_json(data: dict[str, Any]) -> RunResult:
    """A RunResult back from its JSON form (a Celery result)."""
    counts = Counts.from_json(data)
    return RunResult(
        Unit.from_json(data["unit"]),
        data.get("run_id"),
        str(data["status"]),
        counts,
        error=data.get("error"),
        error_class=data.get("error_class"),
        note=data.get("note"),
    )
