"""Providers: ``GET /providers?showallproviderids=true`` into ``providers``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def to_row(record: Mapping[str, Any], *, practice_id: str, **_context: Any) -> dict[str, Any]:
    """Map one provider record to a ``providers`` row (sparse records are normal)."""
    rec = ensure_object(record)
    return {
        "practice_id": practice_id,
        "provider_id": parse_id(rec.get("providerid"), "providerid"),
        **pick(rec, parse_str, TEXT, lenient=True),
        **pick(rec, optional_id, IDS, lenient=True),
        **pick(rec, parse_bool, FLAGS, lenient=True),
        **pick(rec, parse_str_list, LISTS, lenient=True),
        "raw": json_safe(record),  # NaN as "NaN", a lone surrogate as U+FFFD: storable
    }


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
