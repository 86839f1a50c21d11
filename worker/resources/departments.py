"""Departments: ``GET /departments?showalldepartments=true&providerlist=true`` into ``departments``.

The full listing (``showalldepartments=true``) includes portal-hidden departments but does not say
which they are. The sync may read the default listing too (which omits them) and pass
``hidden=True/False`` per department; without that comparison ``hidden`` is stored as NULL
(unknown) rather than guessed. ``providerlist=true`` adds each department's ``providerlist``
(providers with appointments booked there), stored as ``provider_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from models import Department
from worker.jsonsafe import json_safe
from worker.parse import parse_bool, parse_float, parse_id, parse_int, parse_str, parse_str_list
from worker.resources.base import Resource, ensure_object, optional_id, pick, tolerant

TEXT = {
    "name": "name",
    "patient_department_name": "patientdepartmentname",
    "timezone_name": "timezonename",
    "address": "address",
    "address2": "address2",
    "city": "city",
    "state": "state",
    "zip": "zip",
    "phone": "phone",
    "fax": "fax",
    "provider_group_name": "providergroupname",
    "place_of_service_type_name": "placeofservicetypename",
    "clinicals": "clinicals",
}
IDS = {
    "provider_group_id": "providergroupid",
    "chart_sharing_group_id": "chartsharinggroupid",
    "place_of_service_type_id": "placeofservicetypeid",
}
FLAGS = {
    "does_not_observe_dst": "doesnotobservedst",
    "service_department": "servicedepartment",
    "is_hospital_department": "ishospitaldepartment",
}
NUMBERS = {"latitude": "latitude", "longitude": "longitude"}


class DepartmentRow(TypedDict):
    """A row of ``departments`` as ``to_row`` returns it (the bookkeeping columns are the
    upsert's)."""

    practice_id: str
    department_id: str
    name: str | None
    patient_department_name: str | None
    timezone_name: str | None
    does_not_observe_dst: bool | None
    timezone_offset: int | None
    address: str | None
    address2: str | None
    city: str | None
    state: str | None
    zip: str | None
    phone: str | None
    fax: str | None
    hidden: bool | None
    provider_group_id: str | None
    provider_group_name: str | None
    chart_sharing_group_id: str | None
    place_of_service_type_id: str | None
    place_of_service_type_name: str | None
    service_department: bool | None
    is_hospital_department: bool | None
    clinicals: str | None
    latitude: float | None
    longitude: float | None
    provider_ids: list[str] | None
    raw: Any


def to_row(
    record: Mapping[str, Any],
    *,
    practice_id: str,
    hidden: bool | None = None,
    **_context: Any,
) -> DepartmentRow:
    """Map one department record to a ``departments`` row; ``hidden`` comes from the caller."""
    rec = ensure_object(record)
    return cast(
        DepartmentRow,
        {
            "practice_id": practice_id,
            "department_id": parse_id(rec.get("departmentid"), "departmentid"),
            **pick(rec, parse_str, TEXT, lenient=True),
            **pick(rec, optional_id, IDS, lenient=True),
            **pick(rec, parse_bool, FLAGS, lenient=True),
            **pick(rec, parse_float, NUMBERS, lenient=True),
            "timezone_offset": tolerant(parse_int)(rec.get("timezoneoffset"), "timezoneoffset"),
            "hidden": hidden,
            "provider_ids": tolerant(parse_str_list)(rec.get("providerlist"), "providerlist"),
            "raw": json_safe(record),  # NaN as "NaN", a lone surrogate as U+FFFD: storable
        },
    )


RESOURCE = Resource(
    name="departments",
    path="/departments",
    collection="departments",
    id_field="departmentid",
    model=Department,
    to_row=to_row,
    key_column="department_id",
    params={"showalldepartments": "true", "providerlist": "true"},
    # The default listing omits portal-hidden departments; only its ids are read, so it goes
    # without providerlist (a larger answer for nothing).
    visible_params={},
)
