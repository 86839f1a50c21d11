"""How each read strategy reads a unit: the engine dispatches here, never on a resource's name."""

from __future__ import annotations

from collections.abc import Callable

from worker.resources import ReadStrategy
from worker.resources import get_resource as resource_for
from worker.sync.job import Job
from worker.sync.read.by_department import read_by_department
from worker.sync.read.feed import read_feed
from worker.sync.read.listing import read_listing
from worker.sync.read.together import read_departments_together
from worker.units import Unit

Reader = Callable[[Job], None]

READERS: dict[ReadStrategy, Reader] = {
    ReadStrategy.LISTING: read_listing,
    ReadStrategy.BY_DEPARTMENT: read_by_department,
}


def reader_for(unit: Unit) -> Reader:
    """The read of a unit: its resource's strategy; a unit of mode ``changed`` reads the
    resource's feed; a unit read by department that names no department covers all of the
    practice's departments at once (the multi-department listing)."""
    resource = resource_for(unit.resource)
    if unit.mode == "changed":
        return read_feed
    if resource.read == ReadStrategy.BY_DEPARTMENT and unit.department_id is None:
        return read_departments_together
    return READERS[resource.read]
