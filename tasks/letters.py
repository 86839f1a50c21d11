"""The ``task_failed`` letter of a Celery task that failed for good, built from its arguments.

Pure (no session, no Celery): the task's ``on_failure`` writes what this returns. A letter keeps
what replay needs to do the work again: a unit of work (``run_unit``), or one practice's request
(``sync_practice``: its resources, mode and days, replayed through the same fan-out the CLI
uses); any other task's arguments are kept as they came, for a person to read.

A task refused because its process died on every delivery (``DeliveriesExhausted``: out of
memory, a crash) keeps ``process_deaths`` beside its unit or request in ``task_args``: the
periodic replay leaves such a letter to a person (``dead-letters replay ID`` runs it), as running
it again would likely kill another process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from worker.deliveries import DeliveriesExhausted
from worker.logging import safe_summary
from worker.store.letters import RequestFailure
from worker.sync.plan import SyncRequest
from worker.units import Unit

PRACTICE_ARGS = ("practice_id", "resources", "mode", "start", "end")  # its parameters, in order


def task_failure(
    name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    exc: BaseException,
    *,
    practice: bool = False,
) -> RequestFailure:
    """The ``task_failed`` letter of task ``name`` called with ``args``/``kwargs``; ``practice``:
    the task is a practice's fan-out (its arguments are the practice's request)."""
    unit = kwargs.get("unit", args[0] if args else None)
    unit = unit if isinstance(unit, dict) else {}
    request = practice_request(args, kwargs) if practice else None
    task_args: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if unit:
        task_args = {"unit": unit}
    elif request:
        task_args = {"request": request}
    identity = _identity(unit, task_args)  # the work, whatever stopped it
    if isinstance(exc, DeliveriesExhausted):
        task_args = {**task_args, "process_deaths": exc.deaths}
    known = request or kwargs
    return RequestFailure(
        resource=str(unit.get("resource") or _joined(known.get("resources")) or name),
        practice_id=str(unit.get("practice_id") or known.get("practice_id") or ""),
        department_id=unit.get("department_id"),
        path=None,
        params={},
        error=None,
        error_class="task_failed",
        message=f"{name}: {safe_summary(exc)}",
        task_name=name,
        task_args=task_args,
        identity=identity,
    )


def practice_request(args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The practice's request from ``sync_practice``'s arguments (positional or not), if valid."""
    given = dict(zip(PRACTICE_ARGS, args, strict=False))
    given.update({k: v for k, v in kwargs.items() if k in PRACTICE_ARGS})
    try:
        return SyncRequest.from_practice_json(given).practice_json(str(given["practice_id"]))
    except (KeyError, TypeError, ValueError):
        return None


def _identity(unit: dict[str, Any], task_args: dict[str, Any]) -> dict[str, Any]:
    """The unit's identity (an incremental unit's moving window left out) when it parses."""
    try:
        return {"unit": Unit.from_json(unit).identity()} if unit else task_args
    except (KeyError, TypeError, ValueError):
        return task_args


def _joined(resources: Any) -> str | None:
    return ",".join(map(str, resources)) if isinstance(resources, list | tuple) else None
