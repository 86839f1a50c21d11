"""`athena-sync sync ... --enqueue [--wait]`: send the request to the Celery workers."""

from __future__ import annotations

from typing import Any

import click

from worker.cli.output import console, print_failures, summary_table
from worker.settings import Settings
from worker.sync.orchestrate import SyncRequest
from worker.sync.runs import Counts, RunResult
from worker.sync.units import Unit

COUNT_FIELDS = tuple(Counts.__dataclass_fields__)


def enqueue_request(settings: Settings, request: SyncRequest, *, wait: bool) -> int:
    """Send one ``sync_practice`` task per practice; with ``wait``, print every unit's result."""
    settings.require_redis_url()
    from tasks.sync_tasks import sync_practice  # the Celery app loads its configuration here

    sent = []
    for practice_id in request.practices:
        result = sync_practice.apply_async(kwargs=_practice_kwargs(request, practice_id))
        click.echo(f"enqueued sync_practice practice={practice_id} task={result.id}")
        sent.append(result)
    if not wait:
        return 0
    results: list[RunResult] = []
    for practice_result in sent:
        results.extend(_wait_practice(practice_result))
    console.print(summary_table(results))
    print_failures(results)
    return 1 if any(r.status == "failed" for r in results) else 0


def _practice_kwargs(request: SyncRequest, practice_id: str) -> dict[str, Any]:
    return {
        "practice_id": practice_id,
        "resources": list(request.resources),
        "mode": request.mode,
        "start": request.start.isoformat() if request.start else None,
        "end": request.end.isoformat() if request.end else None,
    }


def _wait_practice(practice_result: Any) -> list[RunResult]:
    """The units the fan-out ran itself, then each unit task's result as it finishes."""
    plan = practice_result.get(propagate=False)
    if not isinstance(plan, dict):
        click.echo(f"task {practice_result.id} failed: {plan!r}", err=True)
        return []
    results = [result_from_json(r) for r in plan["ran"]]
    for result in results:
        _echo(practice_result.id, result)
    for entry in plan["sent"]:
        outcome = practice_result.app.AsyncResult(entry["task_id"]).get(propagate=False)
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
        Unit.from_json(data["unit"]), data.get("run_id"), str(data["status"]), counts,
        error=data.get("error"), error_class=data.get("error_class"), note=data.get("note"),
    )  # fmt: skip
