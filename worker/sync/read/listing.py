"""Complete listings (``ReadStrategy.LISTING``): one unit per practice reads every page, then
marks deleted what the listing no longer holds."""

from __future__ import annotations

from typing import Any

from worker.resources import Resource
from worker.resources import get_resource as resource_for
from worker.sync.job import Job, map_page, pages, prepare_mapped
from worker.sync.pages import MappedPage
from worker.sync.read.complete import read_then_mark


def _visible_ids(job: Job, resource: Resource, params: dict[str, Any]) -> set[str]:
    """The ids the resource's visible listing shows (e.g. departments not hidden in the portal)."""
    visible: set[str] = set()
    for page in pages(job, params):
        visible |= {i for r in page.records if (i := resource.record_id(r))}
    return visible


def _rows(job: Job, resource: Resource, records: list[Any], visible: set[str] | None) -> MappedPage:
    if visible is None:
        return map_page(job, records, {})
    mapped = MappedPage()
    for record in records:
        ident = resource.record_id(record)
        hidden = None if ident is None else ident not in visible
        mapped.extend(map_page(job, [record], {"hidden": hidden}, prepare=False))
    return prepare_mapped(job, mapped)


def read_listing(job: Job) -> None:
    """A complete listing; rows missing from it are marked deleted afterwards."""
    resource = resource_for(job.unit.resource)
    visible = None
    if resource.visible_params is not None:
        visible = _visible_ids(job, resource, dict(resource.visible_params))
    read_then_mark(
        job,
        dict(resource.params),
        lambda records: _rows(job, resource, records, visible),
        resource.model,
        (),
    )
