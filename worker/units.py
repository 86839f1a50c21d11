"""Units of sync work: what one run covers, and how a date range splits into windows.

A value below both the engine (which plans and runs units) and the store (which records them).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from worker.resources import REGISTRY

MODES = ("full", "incremental", "reconcile", "changed")
"""``changed``: a read of the practice's changed-data feed (no department, no window)."""


@dataclass(frozen=True)
class Unit:
    """One unit of work: a resource for a practice, narrowed to a department and window."""

    resource: str
    practice_id: str
    mode: str = "full"
    department_id: str | None = None
    window_start: date | None = None
    window_end: date | None = None

    def __post_init__(self) -> None:
        if self.resource not in REGISTRY:
            raise ValueError(f"unknown resource {self.resource!r}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")

    @property
    def key(self) -> str:
        """A stable name for this unit (leases, logs).

        An incremental read's horizon moves with the calendar but it is still the same work on
        the same watermark, so its window is not part of its name.
        """
        parts = [self.resource, self.practice_id, self.mode]
        if self.department_id is not None:
            parts.append(f"dept={self.department_id}")
        windowed = self.mode != "incremental"
        if windowed and self.window_start is not None and self.window_end is not None:
            parts.append(f"{self.window_start.isoformat()}..{self.window_end.isoformat()}")
        return ":".join(parts)

    def identity(self) -> dict[str, Any]:
        """What makes two failures "the same" (dead-letter dedup): the unit without the moving
        horizon of an incremental read."""
        data = self.to_json()
        if self.mode == "incremental":
            data.pop("window_start")
            data.pop("window_end")
        return data

    def to_json(self) -> dict[str, Any]:
        """JSON-safe arguments (Celery task args, dead-letter task_args)."""
        data = asdict(self)
        for name in ("window_start", "window_end"):
            if data[name] is not None:
                data[name] = data[name].isoformat()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unit:
        """Inverse of :meth:`to_json`."""
        return cls(
            resource=str(data["resource"]),
            practice_id=str(data["practice_id"]),
            mode=str(data.get("mode") or "full"),
            department_id=data.get("department_id"),
            window_start=_date_or_none(data.get("window_start")),
            window_end=_date_or_none(data.get("window_end")),
        )


def _date_or_none(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def default_window(today: date, *, days_back: int, days_ahead: int) -> tuple[date, date]:
    """The appointment horizon: ``days_back`` before today to ``days_ahead`` after."""
    return today - timedelta(days=days_back), today + timedelta(days=days_ahead)


def split_windows(start: date, end: date, max_days: int) -> Iterator[tuple[date, date]]:
    """Split the inclusive range [start, end] into consecutive windows of at most max_days."""
    if end < start:
        raise ValueError(f"window end {end} is before start {start}")
    cursor = start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=max_days - 1))
        yield cursor, last
        cursor = last + timedelta(days=1)


def department_units(
    resource: str,
    practice_id: str,
    department_ids: list[str],
    *,
    mode: str,
    start: date,
    end: date,
    max_days: int,
    together: bool = False,
) -> list[Unit]:
    """A resource read by department fans out per department; reconcile also per window
    (an incremental unit reads the whole range on its watermark). ``together``: one unit covers
    every department (no ``department_id``: the multi-department listing), reconcile per window.
    """
    if together and department_ids:
        if mode == "reconcile":
            return [
                Unit(resource, practice_id, mode, None, w_start, w_end)
                for w_start, w_end in split_windows(start, end, max_days)
            ]
        return [Unit(resource, practice_id, "incremental", None, start, end)]
    units: list[Unit] = []
    for department_id in department_ids:
        if mode == "reconcile":
            units.extend(
                Unit(resource, practice_id, mode, department_id, w_start, w_end)
                for w_start, w_end in split_windows(start, end, max_days)
            )
        else:
            units.append(Unit(resource, practice_id, "incremental", department_id, start, end))
    return units
