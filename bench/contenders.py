"""The contenders as the harness sees them: where their rows land and what their plan reads.

Kept free of the contenders' own imports, so the harness runs without dlt installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from bench.sandbox import Dataset

RESOURCES = ("providers", "departments", "appointmenttypes", "appointments")


@dataclass(frozen=True)
class Contender:
    """One loader under test."""

    name: str  # key of bench.child.LOADERS
    label: str
    tables: dict[str, str]  # resource -> schema.table holding its records
    data_schema: str  # every table of this schema holds records (nested lists included)
    plan_pages: Callable[[Dataset, int], int]  # requests its own plan needs at a page limit
    plan_note: str
    migrate: bool = False  # the harness runs athena-sync's migrations first
    windowed: bool = False  # reads appointments per department and 31-day window

    def is_data_table(self, qualified: str) -> bool:
        """Whether a ``schema.table`` holds records (as opposed to bookkeeping or staging)."""
        schema, _, table = qualified.partition(".")
        if self.data_schema != "public":
            return schema == self.data_schema and not table.startswith("_dlt")
        return qualified in self.tables.values()


def _athena_pages(dataset: Dataset, limit: int) -> int:
    # Appointments in windows of at most 31 days (SYNC_WINDOW_DAYS), plus the default
    # departments listing that tells portal-hidden departments apart.
    return dataset.pages_needed(limit, windowed=True) + 1


ATHENA = Contender(
    name="athena-sync",
    label="athena-sync",
    tables={
        "providers": "public.providers",
        "departments": "public.departments",
        "appointmenttypes": "public.appointment_types",
        "appointments": "public.appointments",
    },
    data_schema="public",
    plan_pages=_athena_pages,
    plan_note="per department per 31-day window, + the default departments listing",
    migrate=True,
    windowed=True,
)
BASELINE = Contender(
    name="baseline",
    label="raw baseline",
    tables={
        "providers": "public.bl_providers",
        "departments": "public.bl_departments",
        "appointmenttypes": "public.bl_appointment_types",
        "appointments": "public.bl_appointments",
    },
    data_schema="public",
    plan_pages=lambda dataset, limit: dataset.pages_needed(limit),
    plan_note="one listing per department over the whole window",
)
DLT = Contender(
    name="dlt",
    label="dlt",
    tables={name: f"athena.{name}" for name in RESOURCES},
    data_schema="athena",
    plan_pages=lambda dataset, limit: dataset.pages_needed(limit),
    plan_note="one listing per department over the whole window",
)
CONTENDERS = {c.name: c for c in (ATHENA, BASELINE, DLT)}


def dlt_available() -> bool:
    """Whether the optional dlt contender can run (the ``bench`` extra is installed)."""
    return importlib.util.find_spec("dlt") is not None
