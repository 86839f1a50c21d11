"""Providers: ``GET /providers?showallproviderids=true`` into ``providers``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from models import Provider
from worker.jsonsafe import json_safe
from worker.parse import parse_bool, parse_id, parse_str, parse_str_list
from worker.resources.base import Resource, ensure_object, optional_id, pick

TEXT = {
    "first_name": "firstname",
    "last_name": "lastname",
    "display_name": "displayname",
    "specialty": "specialty",
    "ansi_specialty_code": "ansispecialtycode",
    "provider_type": "providertype",
    "provider_type_id": "providertypeid",
    "entity_type": "entitytype",
    "scheduling_name": "schedulingname",
    "provider_username": "providerusername",
    "home_department": "homedepartment",
    "sex": "sex",
}
IDS = {
    "npi": "npi",
    "specialty_id": "specialtyid",
    "usual_department_id": "usualdepartmentid",
    "supervising_provider_id": "supervisingproviderid",
}
FLAGS = {
    "billable": "billable",
    "hide_in_portal": "hideinportal",
    "accepting_new_patients": "acceptingnewpatients",
    "create_encounter_on_check_in": "createencounteroncheckin",
}
LISTS = {"other_provider_ids": "otherprovideridlist", "provider_group_ids": "providergrouplist"}


class ProviderRow(TypedDict):
    """A row of ``providers`` as ``to_row`` returns it (the bookkeeping columns are the
    upsert's)."""

    practice_id: str
    provider_id: str
    first_name: str | None
    last_name: str | None
    display_name: str | None
    npi: str | None
    specialty: str | None
    specialty_id: str | None
    ansi_specialty_code: str | None
    provider_type: str | None
    provider_type_id: str | None
    entity_type: str | None
    billable: bool | None
    scheduling_name: str | None
    provider_username: str | None
    home_department: str | None
    usual_department_id: str | None
    supervising_provider_id: str | None
    sex: str | None
    hide_in_portal: bool | None
    accepting_new_patients: bool | None
    create_encounter_on_check_in: bool | None
    other_provider_ids: list[str] | None
    provider_group_ids: list[str] | None
    raw: Any


def to_row(record: Mapping[str, Any], *, practice_id: str, **_context: Any) -> ProviderRow:
    """Map one provider record to a ``providers`` row (sparse records are normal)."""
    rec = ensure_object(record)
    return cast(
        ProviderRow,
        {
            "practice_id": practice_id,
            "provider_id": parse_id(rec.get("providerid"), "providerid"),
            **pick(rec, parse_str, TEXT, lenient=True),
            **pick(rec, optional_id, IDS, lenient=True),
            **pick(rec, parse_bool, FLAGS, lenient=True),
            **pick(rec, parse_str_list, LISTS, lenient=True),
            "raw": json_safe(record),  # NaN as "NaN", a lone surrogate as U+FFFD: storable
        },
    )


RESOURCE = Resource(
    name="providers",
    path="/providers",
    collection="providers",
    id_field="providerid",
    model=Provider,
    to_row=to_row,
    key_column="provider_id",
    params={"showallproviderids": "true"},
)
