"""How each read strategy reads a unit: the engine dispatches here, never on a resource's name."""

from __future__ import annotations

from collections.abc import Callable

from worker.resources import ReadStrategy
from worker.sync.job import Job
from worker.sync.read.by_department import read_by_department
from worker.sync.read.listing import read_listing

READERS: dict[ReadStrategy, Callable[[Job], None]] = {
    ReadStrategy.LISTING: read_listing,
    ReadStrategy.BY_DEPARTMENT: read_by_department,
}
