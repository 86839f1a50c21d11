"""``Resource``: what one athenahealth collection is, and how it is read, as a frozen value.

A resource module (``worker/resources/providers.py`` …) declares ``RESOURCE = Resource(...)`` next
to its pure ``to_row``. The sync engine reads everything it needs from that value: where to GET,
which key holds the list, which field is the id, which table the rows go to, which query
parameters to always send and *how it is read* (:class:`ReadStrategy`): the engine dispatches on
the strategy, never on a resource's name. Nothing here talks to the network or the database.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from models import Base
from worker.jsonsafe import find_unstorable
from worker.parse import BadRecord, parse_id

RowMapper = Callable[..., Mapping[str, Any]]
"""A pure ``to_row``: the record's row (each resource's TypedDict), or BadRecord."""


class ReadStrategy(StrEnum):
    """How the engine reads a resource."""

    LISTING = "listing"
    """A complete listing per practice (one unit); rows missing from it are marked deleted."""
    BY_DEPARTMENT = "by-department"
    """Per department (one unit each) in date windows of department-local days: ``incremental``
    reads what changed since the department's watermark, ``reconcile`` reads whole windows and
    marks what vanished. Rows are mapped with the department zones (``timezones``), so the
    practice's departments are read first."""


def _frozen(params: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(params))


@dataclass(frozen=True, eq=False)
class Feed:
    """A changed-data feed of a resource (ATHENA_API.md §2.8): a third way of reading it.

    A read serves the changes not yet served and marks them processed (it is destructive); the
    engine reads it in units of mode ``changed``, one per practice, and maps every record with
    the resource's own ``to_row``. Reading needs a subscription (``subscription_path``).
    """

    path: str
    """E.g. ``"/appointments/changed"``."""
    subscription_path: str
    """``POST``/``GET``/``DELETE`` the subscription; ``{subscription_path}/events`` lists the
    events one may subscribe to."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters every read sends."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))

    @property
    def events_path(self) -> str:
        """``GET`` the events a subscription can name."""
        return f"{self.subscription_path}/events"


@dataclass(frozen=True, eq=False)
class Resource:
    """One athenahealth collection and how it maps onto one table."""

    name: str
    """CLI / sync_runs name, e.g. ``"appointment-types"``."""
    path: str
    """Path below ``/v1/{practiceid}``, e.g. ``"/appointmenttypes"``."""
    collection: str
    """Key of the list in the response envelope, e.g. ``"appointmenttypes"``."""
    id_field: str
    """The record's id field, e.g. ``"appointmenttypeid"``."""
    model: type[Base]
    to_row: RowMapper
    key_column: str
    """The table's id column (besides ``practice_id``), e.g. ``"appointment_type_id"``."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Query parameters always sent (``showcancelled=true`` …)."""
    guard_column: str | None = None
    """Column an upsert must never move backwards (``last_modified_at`` for appointments)."""
    guard_field: str | None = None
    """The record's field ``guard_column`` is mapped from (``lastmodified``, Eastern), read from
    a bad record's stored copy to tell whether a clean copy is at least as new."""
    department_field: str | None = None
    """The record's field naming its department, for a resource read by department: a bad
    record read by a unit of many departments (the feed, the multi-department listing) is
    lettered against that department."""
    read: ReadStrategy = ReadStrategy.LISTING
    """How the engine reads it."""
    visible_params: Mapping[str, str] | None = None
    """When set, the listing is also read with these parameters only (e.g. departments without
    ``showalldepartments``, which omits portal-hidden ones) and each record is mapped with
    ``hidden`` = whether that listing left it out."""
    feed: Feed | None = None
    """Its changed-data feed, when athenahealth offers one (read in units of mode ``changed``)."""
    multi_department_path: str | None = None
    """For a resource read by department: the listing that takes ``departmentid`` repeated, so
    one request covers many departments (``SYNC_MULTI_DEPARTMENT``)."""
    volatile_fields: tuple[str, ...] = ()
    """Top-level fields of a record that one way of reading carries and another does not (the
    changed-data feed's ``appointmentnotes``): left out of the change comparison, so reading an
    unchanged record the other way writes nothing; ``raw`` keeps them as the last write received
    them. Changing this list needs a migration recomputing ``row_hash`` (see 0006)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))
        if self.visible_params is not None:
            object.__setattr__(self, "visible_params", _frozen(self.visible_params))

    def record_id(self, record: Any) -> str | None:
        """The record's id as text if it has a usable one, else None (for dead letters)."""
        if type(record) is not dict and not isinstance(record, Mapping):  # (dict: fast)
            return None
        try:
            return parse_id(record.get(self.id_field), self.id_field, required=False)
        except BadRecord:
            return None


def ensure_object(record: Any) -> Mapping[str, Any]:
    """The record itself if it is a JSON object, else BadRecord."""
    if type(record) is not dict and not isinstance(record, Mapping):  # (dict: fast)
        raise BadRecord("record is not a JSON object", None)
    return record


def ensure_storable(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """The record itself if a database can hold all of it, else BadRecord naming the field: a
    NaN/Infinity or a lone surrogate anywhere (see ``worker.jsonsafe``)."""
    found = find_unstorable(record)
    if found is not None:
        raise BadRecord(found[1], found[0])
    return record


def optional_id(value: Any, field: str) -> str | None:
    """``parse_id`` for ids a record may lack."""
    return parse_id(value, field, required=False)


def pick(
    record: Mapping[str, Any],
    parser: Callable[[Any, str], Any],
    fields: Mapping[str, str],
    *,
    lenient: bool = False,
) -> dict[str, Any]:
    """Parse several optional fields with one parser; ``fields`` maps column -> API field.

    ``lenient``: a malformed value becomes NULL instead of refusing the whole record (for
    descriptive fields of reference data; the value stays in ``raw``).
    """
    read = tolerant(parser) if lenient else parser
    return {column: read(record.get(key), key) for column, key in fields.items()}


def tolerant(parser: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """The parser, answering None where it would refuse the value."""

    def read(value: Any, field: str) -> Any:
        try:
            return parser(value, field)
        except BadRecord:
            return None

    return read
