"""Spans of the changed-data feed as ``showprocessed…`` names them, and the letter of a span
that can no longer be read again (its marker older than ``SYNC_FEED_RECOVERY_HOURS``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.parse import EASTERN, to_eastern_param, zone_info
from worker.resources import Resource
from worker.store.letters import RequestFailure
from worker.units import Unit


def eastern_end(moment: datetime) -> str:
    """The latest Eastern wall time up to ``moment``, as a span's end: in the second pass of the
    hour that repeats when daylight time ends, the first pass reached later wall times."""
    local = moment.astimezone(zone_info(EASTERN))
    if local.fold == 1:
        return to_eastern_param(moment + timedelta(hours=1))
    return local.strftime("%m/%d/%Y %H:%M:%S")


def gap_text(start: datetime, end: datetime) -> str:
    """A span as Eastern wall time (what ``showprocessed…`` names) and as UTC."""
    utc = "%Y-%m-%d %H:%M:%SZ"
    return (
        f"from {to_eastern_param(start)} to {eastern_end(end)} Eastern"
        f" ({start.astimezone(UTC):{utc}} to {end.astimezone(UTC):{utc}})"
    )


def gap_letter(
    unit: Unit,
    resource: Resource,
    start: datetime,
    end: datetime,
    *,
    hours: int,
    task_name: str | None,
) -> RequestFailure:
    """A ``client_error`` letter naming a span of processed records not read again. It keeps no
    unit to replay (running the feed again cannot bring the span back): a person reconciles
    what the listing cannot see, then discards it."""
    assert resource.feed is not None
    message = (
        f"changed-feed records processed {gap_text(start, end)} may be lost: a read in that"
        " span never committed, and the span is older than SYNC_FEED_RECOVERY_HOURS"
        f" ({hours} h), when athenahealth may no longer serve them again; not read again."
        f" The listing ({resource.path}) polls the practice once more from its watermarks"
        " (changes inside the horizon); a visit outside the horizon changed in that span"
        " needs a reconcile over its dates (athena-sync sync appointments --mode reconcile"
        f" --practice {unit.practice_id} --from ... --to ...); then discard this letter"
    )
    span = {
        "showprocessedstartdatetime": to_eastern_param(start),
        "showprocessedenddatetime": eastern_end(end),
    }
    return RequestFailure(
        resource=resource.name,
        practice_id=unit.practice_id,
        path=resource.feed.path,
        params=span,
        error=None,
        error_class="client_error",
        message=message,
        task_name=task_name,
        # Its own letter, not the unit's: the unit succeeding does not close the gap.
        identity={"unit": unit.identity(), "gap": span},
    )
