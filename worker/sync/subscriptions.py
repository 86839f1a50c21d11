"""A practice's changed-data subscription: ask how it stands, create it, delete it.

``GET {subscription_path}`` answers ``{"status": "ACTIVE"|"Partial"|…, "subscriptions":
[{"eventname": …}]}`` (ATHENA_API.md §2.8); anything else, a 403 or a 404 included, reads as "no
subscription" with the API's words kept as the detail. Each call records what it learned in
``source_state``, so scheduled runs know how the practice stands without asking again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from worker.athena.client import AthenaClient
from worker.athena.errors import AthenaError, FatalError
from worker.resources import Resource
from worker.store.sources import record_subscribe_request, record_subscription


@dataclass(frozen=True)
class Subscription:
    """How a subscription stands: ``active``, ``partial`` or ``none``, and in the API's words."""

    state: str
    status: str | None
    events: tuple[str, ...] = ()
    detail: str | None = None

    def describe(self) -> str:
        """One line for logs, run summaries and the doctor."""
        if self.detail:
            return self.detail
        named = f"{len(self.events)} event(s)" if self.events else "no events"
        return f"status {self.status or '(none)'}, {named}"


def read_status(body: Any) -> Subscription:
    """The subscription a ``GET …/subscription`` body describes (parsed defensively)."""
    if not isinstance(body, dict):
        return Subscription("none", None, detail="answer is not a JSON object")
    raw = body.get("status")
    status = raw.strip() if isinstance(raw, str) else None
    listed = body.get("subscriptions")
    entries = listed if isinstance(listed, list) else []
    events = tuple(
        str(e["eventname"]) for e in entries if isinstance(e, dict) and e.get("eventname")
    )
    upper = (status or "").upper()
    state = "active" if upper == "ACTIVE" else "partial" if upper == "PARTIAL" else "none"
    if status is None and events:
        state = "active"  # events listed without a status: let the feed's own answer decide
    return Subscription(state, status, events)


def refusal(error: AthenaError) -> Subscription:
    """An error from the feed or its subscription, as "no subscription" in the API's words."""
    words = error.api_error or error.detail or error.message
    return Subscription("none", None, detail=f"{error.status}: {words}")


def unusable(error: AthenaError) -> bool:
    """Whether a feed's error means it cannot be read for this practice (not subscribed,
    activating, not enabled: 403; not offered: 404), as opposed to a practice refusing us."""
    if not isinstance(error, FatalError) or error.status not in (403, 404):
        return False
    return "invalid practice" not in (error.api_error or "").lower()


def check(
    client: AthenaClient,
    sessions: sessionmaker[Session],
    resource: Resource,
    practice_id: str,
    *,
    now: datetime,
) -> Subscription:
    """``GET`` the subscription and record it; a 403/404 reads as none."""
    assert resource.feed is not None
    try:
        body = client.get(practice_id, resource.feed.subscription_path)
        found = read_status(body)
    except AthenaError as error:
        if not unusable(error):
            raise
        found = refusal(error)
    with sessions.begin() as session:
        record_subscription(
            session,
            practice_id,
            resource.name,
            state=found.state,
            detail=found.describe(),
            now=now,
            offset=client.clock_offset,
        )
    return found


def subscribe(
    client: AthenaClient,
    sessions: sessionmaker[Session],
    resource: Resource,
    practice_id: str,
    events: Sequence[str] = (),
    *,
    now: datetime,
) -> str:
    """``POST`` the subscription (every event, or each of ``events``); returns what was asked.
    Recorded so the next scheduled run checks it again."""
    assert resource.feed is not None
    for event in events or (None,):
        params = {"eventname": event} if event else {}
        client.send("POST", practice_id, resource.feed.subscription_path, params)
    asked = f"subscription asked for {', '.join(events) if events else 'every event'}"
    with sessions.begin() as session:
        record_subscribe_request(session, practice_id, resource.name, detail=asked, now=now)
    return asked


def unsubscribe(
    client: AthenaClient,
    sessions: sessionmaker[Session],
    resource: Resource,
    practice_id: str,
    events: Sequence[str] = (),
    *,
    now: datetime,
) -> str:
    """``DELETE`` the subscription (every event, or each of ``events``), then check it again."""
    assert resource.feed is not None
    for event in events or (None,):
        params = {"eventname": event} if event else None
        client.send("DELETE", practice_id, resource.feed.subscription_path, params)
    return check(client, sessions, resource, practice_id, now=now).describe()


def events(client: AthenaClient, resource: Resource, practice_id: str) -> tuple[str, ...]:
    """The events a subscription may name (``GET …/subscription/events``)."""
    assert resource.feed is not None
    body = client.get(practice_id, resource.feed.events_path)
    return read_status(body if isinstance(body, dict) else {}).events


@dataclass(frozen=True)
class Advice:
    """How a subscription stands for the sync, and what to do (``doctor``, ``subscriptions``)."""

    level: str
    """``ok`` (the feed is read), ``warn`` (the listing is polled instead)."""
    text: str
    next_step: str | None = None


def advice(found: Subscription, practice_id: str, *, source: str, auto: bool) -> Advice:
    """The subscription's state in words, and the step that makes the feed usable."""
    create = f"athena-sync subscriptions create --practice {practice_id}"
    polled = "appointments are polled with /appointments/booked until then"
    if source != "changed":
        return Advice("ok", f"{found.state}: not read (SYNC_APPOINTMENTS_SOURCE=booked)")
    if found.state == "active":
        return Advice("ok", "ACTIVE: appointments come from the changed-data feed")
    if found.state == "partial":
        return Advice(
            "warn",
            f"partial ({found.describe()}): events outside it would be missed, so the feed is "
            "not used",
            f"subscribe every event: {create}; {polled}",
        )
    how = "the sync asks for it (ATHENA_AUTO_SUBSCRIBE=true)" if auto else create
    return Advice(
        "warn",
        f"none ({found.describe()})",
        f"{how}; activation takes up to 5 min in production, 10-15 in preview; {polled}",
    )
