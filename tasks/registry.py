"""Every Athena resource athena-sync knows, by its CLI / ``sync_runs`` name."""

from __future__ import annotations

from tasks import appointment_types, appointments, departments, providers
from tasks.resource import Resource

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        departments.RESOURCE,
        providers.RESOURCE,
        appointment_types.RESOURCE,
        appointments.RESOURCE,
    )
}
# Appointment pages never overwrite a newer lastmodified with an older one.
GUARD_COLUMNS: dict[str, str] = {"appointments": "last_modified_at"}


def resource_for(name: str) -> Resource:
    """The Resource called ``name`` (e.g. ``appointment-types``)."""
    try:
        return RESOURCES[name]
    except KeyError:
        raise ValueError(f"unknown resource {name!r}; known: {', '.join(RESOURCES)}") from None
