"""Each resource's ``to_row`` returns exactly its TypedDict: the table's columns but the upsert's
bookkeeping ones, for every record the sandbox serves (sparse providers, hidden departments,
cancelled and open-slot appointments included)."""

from __future__ import annotations

from typing import Any, get_type_hints

import pytest

from models import BOOKKEEPING_COLUMNS
from sandbox import SandboxConfig
from sandbox.store import PracticeStore
from worker.resources import all_resources, appointment_types, appointments, departments, providers
from worker.resources.base import ReadStrategy

ROW_TYPES = {
    "departments": departments.DepartmentRow,
    "providers": providers.ProviderRow,
    "appointment-types": appointment_types.AppointmentTypeRow,
    "appointments": appointments.AppointmentRow,
}


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    return PracticeStore("195900", SandboxConfig(seed=5, appointments=300)).truth()


@pytest.mark.parametrize("name", list(ROW_TYPES))
def test_to_row_returns_its_typed_row(name: str, truth: dict[str, Any]) -> None:
    resource = all_resources()[name]
    declared = set(get_type_hints(ROW_TYPES[name]))
    columns = {c.name for c in resource.model.__table__.columns} - BOOKKEEPING_COLUMNS
    assert declared == columns
    context: dict[str, Any] = {}
    if resource.read == ReadStrategy.BY_DEPARTMENT:
        context["timezones"] = {
            str(d["departmentid"]): d["timezonename"] for d in truth["departments"]
        }
    records = truth[resource.collection]
    assert records
    for record in records:
        assert set(resource.to_row(record, practice_id="195900", **context)) == declared
