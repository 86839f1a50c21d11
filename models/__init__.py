"""SQLAlchemy 2.0 typed tables, one module per table. Import ``Base.metadata`` from here."""

from models.appointment_types import AppointmentType
from models.appointments import Appointment
from models.base import BOOKKEEPING_COLUMNS, Base, UTCDateTime
from models.dead_letters import DeadLetter
from models.departments import Department
from models.providers import Provider
from models.source_state import SourceState
from models.sync_runs import SyncRun
from models.sync_state import SyncState
from models.unit_fences import UnitFence

RESOURCE_MODELS: tuple[type[Base], ...] = (Provider, Department, AppointmentType, Appointment)

__all__ = [
    "BOOKKEEPING_COLUMNS",
    "RESOURCE_MODELS",
    "Appointment",
    "AppointmentType",
    "Base",
    "DeadLetter",
    "Department",
    "Provider",
    "SourceState",
    "SyncRun",
    "SyncState",
    "UTCDateTime",
    "UnitFence",
]
