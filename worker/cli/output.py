"""Rich rendering shared by the CLI verbs: progress while syncing, a summary table after."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.store.runs import Counts, RunResult
from worker.units import Unit

console = Console(width=None if sys.stdout.isatty() else 200)
COUNT_COLUMNS = ("fetched", "inserted", "updated", "unchanged", "deleted", "dead_lettered")
STATUS_STYLE = {"succeeded": "green", "partial": "yellow", "failed": "red", "skipped": "dim"}


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Any]:
    """A live line per unit: records fetched and written so far. Yields the progress hook."""
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def hook(unit: Unit, counts: Counts) -> None:
        if unit.key not in tasks:
            tasks[unit.key] = progress.add_task(unit.key, detail="", total=None)
        detail = f"fetched {counts.fetched}  written {counts.inserted + counts.updated}"
        progress.update(tasks[unit.key], detail=detail)

    with progress:
        yield hook


def _window(unit: Unit) -> str:
    if unit.window_start is None or unit.window_end is None:
        return ""
    return f"{unit.window_start.isoformat()}..{unit.window_end.isoformat()}"


def summary_table(results: Sequence[RunResult]) -> Table:
    """One row per unit of work with its counts and status (and a note, when any has one)."""
    table = Table(title="sync summary")
    for name in ("run", "resource", "practice", "dept", "window", "mode", "status"):
        table.add_column(name)
    for name in (*COUNT_COLUMNS, "api_calls"):
        table.add_column(name.replace("_", " "), justify="right")
    notes = any(r.note for r in results)
    if notes:
        table.add_column("note")
    for r in results:
        style = STATUS_STYLE.get(r.status, "")
        counts = {c: str(getattr(r.counts, c)) for c in (*COUNT_COLUMNS, "api_calls")}
        counts["deleted"] = deleted_cell(r.counts.deleted, r.counts.deletions_deferred)
        table.add_row(
            str(r.run_id or ""),
            r.unit.resource,
            r.unit.practice_id,
            r.unit.department_id or "",
            _window(r.unit),
            r.unit.mode,
            f"[{style}]{r.status}[/]",
            *counts.values(),
            *([r.note or ""] if notes else []),
        )
    deferred = sum(1 for r in results if r.counts.deletions_deferred)
    if deferred:
        table.caption = (
            f"deletions deferred: {deferred} unit{'s' if deferred != 1 else ''} (rows they did "
            "not see stay live until a later complete read)"
        )
    return table


def deleted_cell(deleted: int, deferred: bool) -> str:
    """The deletions a run marked, and whether it left some to a later complete read."""
    return f"{deleted} (deferred)" if deferred else str(deleted)


def print_failures(results: Sequence[RunResult]) -> None:
    """The error of every failed unit, one line each."""
    for r in results:
        if r.status == "failed":
            console.print(f"[red]failed[/] {r.unit.key}: {r.error}", markup=True, highlight=False)
