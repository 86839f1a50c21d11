"""Listing resources (providers, departments, appointment types): complete reads."""

from __future__ import annotations

from typing import Any

from tasks import get_resource as resource_for
from worker.sync.job import Job, map_page, pages, read_then_mark
from worker.sync.pages import MappedPage


def _visible_departments(job: Job) -> set[str]:
    """The default listing omits portal-hidden departments: what it shows is not hidden. Only
    ids are read from it, so it goes without ``providerlist`` (a larger answer for nothing)."""
    resource = resource_for("departments")
    left_out = ("showalldepartments", "providerlist")
    params = {k: v for k, v in resource.params.items() if k not in left_out}
    visible: set[str] = set()
    for page in pages(job, params):
        visible |= {i for r in page.records if (i := resource.record_id(r))}
    return visible


def _listing_rows(job: Job, records: list[Any], visible: set[str] | None) -> MappedPage:
    if visible is None:
        return map_page(job, records, {})
    resource = resource_for("departments")
    mapped = MappedPage()
    for record in records:
        ident = resource.record_id(record)
        hidden = None if ident is None else ident not in visible
        mapped.extend(map_page(job, [record], {"hidden": hidden}))
    return mapped


def sync_listing(job: Job) -> None:
    """A complete listing; rows missing from it are marked deleted afterwards."""
    resource = resource_for(job.unit.resource)
    visible = _visible_departments(job) if job.unit.resource == "departments" else None
    read_then_mark(
        job, dict(resource.params), lambda records: _listing_rows(job, records, visible),
        resource.model, (),
    )  # fmt: skip
