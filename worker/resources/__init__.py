"""The athenahealth resources athena-sync keeps, one pure module each, in one static registry.

A new resource is one module here (its frozen ``Resource`` and pure ``to_row``) plus one line in
``REGISTRY``; the engine reads it by its :class:`~worker.resources.base.ReadStrategy`.
"""

from __future__ import annotations

from worker.resources import appointment_types, appointments, departments, providers
from worker.resources.base import Feed, ReadStrategy, Resource

# Sync order matters: resources read by department need the departments (their zones) first.
REGISTRY: dict[str, Resource] = {
    resource.name: resource
    for resource in (
        departments.RESOURCE,
        providers.RESOURCE,
        appointment_types.RESOURCE,
        appointments.RESOURCE,
    )
}

DEPARTMENTS = departments.RESOURCE
"""The departments: resources read by department fan out over them and take their zones."""


def get_resource(name: str) -> Resource:
    """The ``Resource`` registered as ``name`` (e.g. ``"appointment-types"``)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(REGISTRY)}") from None


def all_resources() -> dict[str, Resource]:
    """Every resource by name, in sync order."""
    return dict(REGISTRY)


def feed_resources() -> tuple[str, ...]:
    """Names of the resources with a changed-data feed, in sync order."""
    return tuple(n for n, r in REGISTRY.items() if r.feed is not None)


def resource_names(read: ReadStrategy | None = None) -> tuple[str, ...]:
    """Names of the registered resources (read the given way), in sync order."""
    return tuple(n for n, r in REGISTRY.items() if read is None or r.read == read)


__all__ = [
    "DEPARTMENTS",
    "REGISTRY",
    "Feed",
    "ReadStrategy",
    "Resource",
    "all_resources",
    "feed_resources",
    "get_resource",
    "resource_names",
]
