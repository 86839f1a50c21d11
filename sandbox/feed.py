"""The appointments changed-data feed of one practice: its subscription and its queue of changes.

What it serves (ATHENA_API.md §2.8), and the sandbox's choices where the real API is undocumented:

- A subscription is per practice (the real one is per API key): ``POST`` subscribes every event
  (or one ``eventname``), ``DELETE`` drops every event (or one). ``GET`` answers ``ACTIVE`` when
  every event is subscribed, ``Partial`` when some are, ``INACTIVE`` with none: it reports what was
  asked for, activated or not.
- Reading answers 403 "Changed messages require setup (subscription) that has not been done."
  until ``activation_seconds`` (sandbox clock) after the first ``POST``.
- A change is queued only when its event is subscribed and the subscription is active (changes
  made while it activates never appear). A deletion never appears as a record.
- A read serves the oldest unprocessed changes (``limit``) and marks them processed (Eastern wall
  time, to the second) unless ``leaveunprocessed=true``; ``offset`` skips unprocessed changes,
  so following ``next`` over a destructive read skips records. ``showprocessedstartdatetime`` /
  ``showprocessedenddatetime`` serve the changes processed in that span again (paged by
  ``offset``), marking nothing, for ``processed_retention_seconds`` (sandbox clock) after they
  were processed when that is set (athenahealth keeps processed records a limited time; the
  sandbox keeps them for ever by default).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sandbox.appointments import Appointment

EVENTS = (
    "ScheduleAppointment",
    "CheckIn",
    "CheckOut",
    "UpdateAppointment",
    "CancelAppointment",
    "UpdateReminderCall",
    "UpdateSuggestedOverbooking",
    "FreezeAppointment",
    "UnfreezeAppointment",
    "DeleteAppointment",
    "AddAppointmentSlot",
)
NOT_SUBSCRIBED = "Changed messages require setup (subscription) that has not been done."


class FeedError(Exception):
    """A request the feed refuses: status and the API's short error text."""

    def __init__(self, status: int, error: str, detail: str | None = None) -> None:
        super().__init__(status, error)
        self.status = status
        self.error = error
        self.detail = detail


@dataclass
class Change:
    """One queued change: the appointment as it was right after the change."""

    seq: int
    event: str
    appointment: Appointment
    processed_at: dt.datetime | None = None
    """When a read marked it processed: Eastern wall time, to the second (what
    ``showprocessed…`` names)."""
    processed_instant: dt.datetime | None = None
    """The same moment, aware UTC (for the retention: wall times repeat when daylight time
    ends)."""


@dataclass(frozen=True)
class FeedQuery:
    """What one read asks for."""

    limit: int
    offset: int = 0
    leave_unprocessed: bool = False
    processed_from: dt.datetime | None = None
    processed_to: dt.datetime | None = None
    departments: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    patientid: str | None = None

    def matches(self, change: Change) -> bool:
        """Whether the change passes the query's filters."""
        a = change.appointment
        return (
            (self.departments is None or a.departmentid in self.departments)
            and (self.providers is None or a.providerid in self.providers)
            and (self.patientid is None or a.patientid == self.patientid)
        )


@dataclass(frozen=True)
class FeedPage:
    """The changes a read served and how many matched before it (``totalcount``)."""

    changes: tuple[Change, ...]
    totalcount: int


@dataclass
class ChangeFeed:
    """One practice's subscription and queue. ``now`` is the sandbox clock (aware UTC);
    ``retention_seconds``: how long a processed change can be served again (None: for ever)."""

    activation_seconds: float
    now: Callable[[], dt.datetime]
    eastern: Callable[[], dt.datetime]
    retention_seconds: float | None = None
    events: set[str] = field(default_factory=set)
    activates_at: dt.datetime | None = None
    changes: list[Change] = field(default_factory=list)
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, event: str | None) -> None:
        """Subscribe one event, or every event; activation counts from the first subscription."""
        chosen = _events([event] if event else EVENTS)
        with self._lock:
            if not self.events:
                self.activates_at = self.now() + dt.timedelta(seconds=self.activation_seconds)
            self.events |= chosen

    def unsubscribe(self, event: str | None) -> None:
        """Drop one event, or every event (then the next subscription activates anew)."""
        chosen = _events([event] if event else EVENTS)
        with self._lock:
            self.events -= chosen
            if not self.events:
                self.activates_at = None

    def status(self) -> dict[str, object]:
        """``GET .../subscription``: ACTIVE, Partial or INACTIVE and the events asked for."""
        with self._lock:
            events = [e for e in EVENTS if e in self.events]
        state = "ACTIVE" if len(events) == len(EVENTS) else "Partial" if events else "INACTIVE"
        return {"status": state, "subscriptions": [{"eventname": e} for e in events]}

    def active(self) -> bool:
        """Whether reads are served (subscribed, and the activation delay has passed)."""
        return self.activates_at is not None and self.now() >= self.activates_at

    def record(self, event: str, appointments: Iterable[Appointment]) -> int:
        """Queue a change per appointment if its event is subscribed and active; how many."""
        with self._lock:
            if event not in self.events or not self.active():
                return 0
            queued = 0
            for appointment in appointments:
                self._seq += 1
                self.changes.append(Change(self._seq, event, appointment))
                queued += 1
            return queued

    def read(self, query: FeedQuery) -> FeedPage:
        """Serve a read (see the module docstring); FeedError when not subscribed."""
        if not self.active():
            raise FeedError(403, NOT_SUBSCRIBED)
        with self._lock:
            if query.processed_from is not None or query.processed_to is not None:
                return self._replay(query)
            waiting = [c for c in self.changes if c.processed_at is None and query.matches(c)]
            served = tuple(waiting[query.offset : query.offset + query.limit])
            if not query.leave_unprocessed:
                stamp, instant = self.eastern(), self.now()
                for change in served:
                    change.processed_at, change.processed_instant = stamp, instant
            return FeedPage(served, len(waiting))

    def _replay(self, query: FeedQuery) -> FeedPage:
        low = query.processed_from or dt.datetime.min
        high = query.processed_to or dt.datetime.max
        kept = self._kept_since()
        done = [
            c
            for c in self.changes
            if c.processed_at is not None
            and low <= c.processed_at <= high
            and (kept is None or c.processed_instant is None or c.processed_instant >= kept)
            and query.matches(c)
        ]
        return FeedPage(tuple(done[query.offset : query.offset + query.limit]), len(done))

    def _kept_since(self) -> dt.datetime | None:
        """The oldest processing instant still served again (None: every one)."""
        if self.retention_seconds is None:
            return None
        return self.now() - dt.timedelta(seconds=self.retention_seconds)

    def counts(self) -> dict[str, int]:
        """Queued changes: unprocessed and processed."""
        with self._lock:
            waiting = sum(1 for c in self.changes if c.processed_at is None)
            return {"unprocessed": waiting, "processed": len(self.changes) - waiting}


def _events(names: Iterable[str]) -> set[str]:
    chosen = set(names)
    unknown = chosen - set(EVENTS)
    if unknown:
        raise FeedError(
            400, "Invalid eventname.", f"Unknown event(s): {', '.join(sorted(unknown))}."
        )
    return chosen
