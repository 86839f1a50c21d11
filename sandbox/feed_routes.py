"""``/v1/{practiceid}/appointments/changed[/subscription[/events]]``: the changed-data feed.

Never cached: every read may mark what it serves. ``eventname`` of a ``POST``/``DELETE`` is read
from the query or the form body.
"""

from __future__ import annotations

from collections.abc import Sequence

from sandbox.appointments import render_json
from sandbox.feed import EVENTS, Change, ChangeFeed, FeedError, FeedQuery
from sandbox.query import ApiError, Params, missing

FEED = ["appointments", "changed"]
SUBSCRIPTION = [*FEED, "subscription"]
EVENTS_PATH = [*SUBSCRIPTION, "events"]
METHODS = {
    tuple(FEED): ("GET",),
    tuple(SUBSCRIPTION): ("GET", "POST", "DELETE"),
    tuple(EVENTS_PATH): ("GET",),
}


def is_feed(rest: Sequence[str]) -> bool:
    """Whether a path below ``/v1/{practiceid}`` is one of the feed's."""
    return tuple(rest) in METHODS


def allowed(method: str, rest: Sequence[str]) -> bool:
    """Whether the feed path answers ``method``."""
    return method in METHODS.get(tuple(rest), ())


def feed_route(
    feed: ChangeFeed,
    method: str,
    rest: list[str],
    params: Params,
    *,
    base: str,
    default_limit: int,
    max_limit: int,
    notes: bool = False,
) -> bytes:
    """The 200 body of a feed request, or ApiError; ``notes``: each record carries
    ``appointmentnotes`` (which ``/appointments/booked`` does not send)."""
    try:
        if rest == EVENTS_PATH:
            return render_json({"subscriptions": [{"eventname": e} for e in EVENTS]})
        if rest == SUBSCRIPTION:
            return _subscription(feed, method, params)
        limit, offset = params.paging(default_limit, max_limit)
        return _read(feed, _query(params, limit, offset), base, params, notes=notes)
    except FeedError as error:
        body = {"error": error.error}
        if error.detail:
            body["detailedmessage"] = error.detail
        raise ApiError(error.status, body) from None


def _subscription(feed: ChangeFeed, method: str, params: Params) -> bytes:
    if method == "GET":
        return render_json(feed.status())
    event = params.get("eventname")
    if method == "POST":
        feed.subscribe(event)
    else:
        feed.unsubscribe(event)
    return render_json({"success": True})


def _query(params: Params, limit: int, offset: int) -> FeedQuery:
    start = params.datetime("showprocessedstartdatetime")
    end = params.datetime("showprocessedenddatetime")
    if (start is None) != (end is None):
        raise missing("showprocessedenddatetime" if end is None else "showprocessedstartdatetime")
    return FeedQuery(
        limit=limit,
        offset=offset,
        leave_unprocessed=params.flag("leaveunprocessed", False),
        processed_from=start,
        processed_to=end,
        departments=params.all_ids("departmentid"),
        providers=params.all_ids("providerid"),
        patientid=params.get("patientid"),
    )


def _read(feed: ChangeFeed, query: FeedQuery, base: str, params: Params, *, notes: bool) -> bytes:
    page = feed.read(query)
    head = [b'{"totalcount":%d' % page.totalcount]
    if query.offset + query.limit < page.totalcount:
        link = f"{base}?{params.echo(query.offset + query.limit)}"
        head.append(b',"next":' + render_json(link))
    rows = b",".join(_with_notes(c) if notes else c.appointment.rendered for c in page.changes)
    return b"".join([*head, b',"appointments":[', rows, b"]}"])


def _with_notes(change: Change) -> bytes:
    """The record with one note made for this change (its wording differs from change to
    change; the shape is the sandbox's guess)."""
    rendered = change.appointment.rendered
    if not rendered.endswith(b"}"):
        return rendered
    note = {
        "appointmentnoteid": str(change.seq),
        "notetext": f"Reminder call {change.seq} made.",
        "displayonschedule": True,
    }
    return rendered[:-1] + b',"appointmentnotes":' + render_json([note]) + b"}"
