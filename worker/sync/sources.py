"""Which source reads a practice's resource read by department, decided from the database alone
(no API call): its changed-data feed, or its listing (one department per request, or all of
them at once).

- ``changed`` requests (beat ``appointments-changes``): a feed unit for a practice whose feed is
  in effect, or whose subscription is due to be checked again (``SYNC_SUBSCRIPTION_RECHECK_SECONDS``
  after it was last seen not active); none with ``SYNC_APPOINTMENTS_SOURCE=booked``.
- ``incremental`` requests (beat ``appointments-incremental``) poll the listing for practices on
  ``booked``, and also for a practice on the feed until the listing has caught up with the feed:
  every department has a watermark and a listing run that began after the feed's first read
  succeeded (changes made before the subscription became readable are not in the feed).
- Listing units cover every department at once when the multi-department listing may be used
  (``SYNC_MULTI_DEPARTMENT``, not refused lately), else one department each.
"""

from __future__ import annotations

from datetime import date, timedelta

from worker.resources import Resource, get_resource
from worker.store.sources import Source, listing_caught_up, source_state
from worker.sync.job import SyncContext
from worker.sync.read.together import multi_department_usable
from worker.units import Unit, department_units


def units_for(
    ctx: SyncContext,
    mode: str,
    name: str,
    practice_id: str,
    department_ids: list[str],
    window: tuple[date, date],
) -> list[Unit]:
    """The units of one resource read by department for one practice, for a request's mode."""
    resource = get_resource(name)
    with ctx.sessions() as session:
        state = source_state(session, practice_id, name)
        since = state.feed_started_at if feed_started(ctx, resource, state) else None
        caught_up = (
            mode == "incremental"
            and since is not None
            and listing_caught_up(session, practice_id, name, department_ids, since)
        )
    if mode == "changed":
        return [Unit(name, practice_id, "changed")] if feed_due(ctx, resource, state) else []
    if caught_up:
        return []
    return department_units(
        name,
        practice_id,
        department_ids,
        mode=mode,
        start=window[0],
        end=window[1],
        max_days=ctx.settings.sync_window_days,
        together=multi_department_usable(ctx.settings, resource, state, ctx.clock()),
    )


def feed_chosen(ctx: SyncContext, resource: Resource) -> bool:
    """Whether the settings read this resource through its feed where it can."""
    return resource.feed is not None and ctx.settings.sync_appointments_source == "changed"


def feed_started(ctx: SyncContext, resource: Resource, state: Source) -> bool:
    """Whether the feed is in effect: chosen, subscribed, and read successfully since."""
    active = state.subscription == "active" and state.feed_started_at is not None
    return feed_chosen(ctx, resource) and active


def feed_due(ctx: SyncContext, resource: Resource, state: Source) -> bool:
    """Whether a feed unit should run: the feed is active, or its subscription is due to be
    checked again (never seen, or not active when last seen long enough ago)."""
    if not feed_chosen(ctx, resource):
        return False
    checked = state.subscription_checked_at
    if state.subscription == "active" or checked is None:
        return True
    recheck = timedelta(seconds=ctx.settings.sync_subscription_recheck_seconds)
    return ctx.clock() - checked >= recheck
