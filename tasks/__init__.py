"""One module per athenahealth resource: a frozen ``Resource`` value plus a pure ``to_row``.

Importing this package imports nothing else (no Celery, no database); use :func:`get_resource`
or :func:`all_resources` to load the resource declarations lazily.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.resource import Resource

# Sync order matters: appointments need departments' time zones.
RESOURCE_MODULES: dict[str, str] = {
    "departments": "tasks.departments",
    "providers": "tasks.providers",
    "appointment-types": "tasks.appointment_types",
    "appointments": "tasks.appointments",
}


def get_resource(name: str) -> Resource:
    """The ``Resource`` declared for ``name`` (e.g. ``"appointment-types"``)."""
    try:
        module = RESOURCE_MODULES[name]
    except KeyError:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(RESOURCE_MODULES)}") from None
    resource: Resource = import_module(module).RESOURCE
    return resource


def all_resources() -> dict[str, Resource]:
    """Every resource by name, in sync order."""
    return {name: get_resource(name) for name in RESOURCE_MODULES}
