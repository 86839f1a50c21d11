"""Changed-data feeds (units of mode ``changed``): one unit per practice reads every change not
yet served, through the resource's own mapping, ``lastmodified`` guard and dead letters.

A read of the feed is destructive: what it serves is marked processed. athenahealth does not say
how ``offset`` behaves over such a feed, whether a deletion ever appears, nor whether marking
happens before the answer reaches us (ATHENA_API.md §2.8), so this reads robustly:

- No ``offset``: every read asks for the oldest changes still waiting, until a read comes back
  empty or says nothing more waits (no ``next`` and fewer than ``limit``); at most
  ``MAX_PAGES`` per run, the next run goes on. A server that serves
  the same records again (marking nothing) ends the run instead of looping.
- Before each destructive read a marker with the API's clock is committed
  (``source_state.feed_pending_since``: the last ``Date`` seen, less the exchange, moved on by
  this machine's clock); the page and the cleared marker commit together. A marker found at the
  start of a run is a read that may have been lost (the process died between the answer and the
  commit): its span is read again first, without marking (``leaveunprocessed=true`` with
  ``showprocessedstartdatetime``/``showprocessedenddatetime``, Eastern, in spans of at most
  ``RECOVERY_SPAN``, widened by ``SYNC_LASTMODIFIED_OVERLAP_SECONDS`` on both sides for clocks
  that disagree). A read that fails (timeout, 5xx, a 200 that is not the listing) is sent once
  only and its span recovered the same way at once: the failed attempt may have been marked.
- athenahealth serves processed records again for a limited time only, so a marker older than
  ``SYNC_FEED_RECOVERY_HOURS`` by the API's clock (asked for first when this run has not seen
  it) is not read again: the gap becomes a ``client_error`` letter naming it, the marker is
  cleared, and the listing polls the practice once more from its watermarks (changes inside the
  horizon); visits outside the horizon changed in the gap need a reconcile over their dates.
- Every record is "upsert this state": a change delivered twice, or after a newer booked read,
  writes once (the guard and the unchanged check decide); two versions of one appointment in one
  page are reduced to the newest first.
- No subscription (403 "Changed messages require setup (subscription) …", or a subscription
  that is not ACTIVE): the run is ``skipped`` with the reason and the practice is polled with the
  listing meanwhile (see ``worker.sync.sources``); with ``ATHENA_AUTO_SUBSCRIBE`` the
  subscription is asked for (again after ``SUBSCRIBE_AGAIN_AFTER`` at the soonest).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from worker.athena.client import Page, Reply
from worker.athena.errors import AthenaError, FatalError, PagingError, RetriableError
from worker.athena.paging import totalcount_of
from worker.parse import to_eastern_param
from worker.resources import Feed, Resource
from worker.resources import get_resource as resource_for
from worker.store.departments import department_zones
from worker.store.letters import add_request_letter
from worker.store.runs import utcnow
from worker.store.sources import (
    Source,
    clear_feed_pending,
    mark_feed_pending,
    record_feed_read,
    record_subscription,
    relist_after_gap,
    source_state,
)
from worker.sync import subscriptions
from worker.sync.job import Job, SourceUnavailable, map_page, write_page
from worker.sync.pages import MappedPage, newest_only
from worker.sync.read.feed_gap import eastern_end, gap_letter, gap_text

log = structlog.get_logger()

MAX_PAGES = 20
RECOVERY_SPAN = timedelta(minutes=10)
FAILED_READS = 3
ACTIVE_RECHECK = timedelta(days=1)
SUBSCRIBE_AGAIN_AFTER = timedelta(hours=1)


def read_feed(job: Job) -> None:
    """One practice's feed: recover a lost read, then read until nothing waits."""
    resource = resource_for(job.unit.resource)
    if resource.feed is None:
        raise ValueError(f"{resource.name} has no changed-data feed: {job.unit.key}")
    with job.ctx.sessions() as session:
        state = source_state(session, job.unit.practice_id, resource.name)
        zones = department_zones(session, job.unit.practice_id)
    run = FeedRun(job, resource, resource.feed, {"timezones": zones}, state)
    pending = state.feed_pending_since
    run.ensure_subscribed(clock_needed=pending is not None)
    if pending is not None:
        run.settle_marker(pending)
    run.drain()


def spans(
    start: datetime, end: datetime, longest: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """[start, end] in consecutive spans of at most ``longest``."""
    cursor = start
    while cursor < end:
        last = min(end, cursor + longest)
        yield cursor, last
        cursor = last


@dataclass
class FeedRun:
    """One run of a practice's feed in progress."""

    job: Job
    resource: Resource
    feed: Feed
    context: dict[str, Any]
    state: Source
    failures: int = 0
    seen: set[tuple[str | None, Any]] = field(default_factory=set)

    @property
    def practice_id(self) -> str:
        return self.job.unit.practice_id

    def server_now(self) -> datetime:
        """The API's clock now: this machine's (the clock the client measured the offset
        against, not the run's injectable one) moved by the offset the last ``Date`` showed."""
        offset = self.job.ctx.client.clock_offset
        if offset is None:  # (a measured offset of zero is an offset)
            offset = self.state.server_offset or timedelta()
        return utcnow() + offset

    def ensure_subscribed(self, *, clock_needed: bool = False) -> None:
        """Ask how the subscription stands when that is not known (or is old news); not active
        ends the run as unavailable. ``clock_needed``: a marker's age is to be judged, so ask
        anyway (one request) when this run has not seen the API's clock yet."""
        ctx, state = self.job.ctx, self.state
        active = state.subscription == "active"
        recheck = (
            ACTIVE_RECHECK
            if active
            else timedelta(seconds=ctx.settings.sync_subscription_recheck_seconds)
        )
        checked = state.subscription_checked_at
        clock_known = not clock_needed or ctx.client.clock_offset is not None
        if active and checked is not None and ctx.clock() - checked < recheck and clock_known:
            return
        found = subscriptions.check(
            ctx.client, ctx.sessions, self.resource, self.practice_id, now=ctx.clock()
        )
        if found.state != "active":
            self.unavailable(found)

    def unavailable(self, found: subscriptions.Subscription) -> None:
        """Record that the feed is not in effect, subscribe if asked to, end the run."""
        ctx = self.job.ctx
        with ctx.sessions.begin() as session:
            record_subscription(
                session,
                self.practice_id,
                self.resource.name,
                state=found.state,
                detail=found.describe(),
                now=ctx.clock(),
                offset=ctx.client.clock_offset,
            )
        path = self.resource.path
        reason = f"changed feed not in effect ({found.describe()}): polled with {path}"
        requested = self.state.subscribe_requested_at
        again = requested is None or ctx.clock() - requested >= SUBSCRIBE_AGAIN_AFTER
        if ctx.settings.athena_auto_subscribe and again:
            reason += "; " + self._subscribe()
        log.warning("sync.feed_unavailable", state=found.state, detail=found.describe())
        raise SourceUnavailable(reason)

    def _subscribe(self) -> str:
        ctx = self.job.ctx
        try:
            return subscriptions.subscribe(
                ctx.client, ctx.sessions, self.resource, self.practice_id, now=ctx.clock()
            )
        except AthenaError as error:
            log.warning("sync.subscribe_failed", status=error.status, error=error.api_error)
            return f"subscribing failed: {error.status} {error.api_error or error.message}"

    def drain(self) -> None:
        """Destructive reads until nothing waits (or ``MAX_PAGES``)."""
        params: dict[str, Any] = {**self.feed.params, "limit": self.job.ctx.settings.page_limit}
        for number in range(1, MAX_PAGES + 1):
            reply = self._read(params)
            if reply is None:
                continue
            records: list[Any] = reply.body.get(self.resource.collection, [])
            total = totalcount_of(reply.body)
            page = Page(records, 0, total, number, True, self.feed.path, params, reply.server_time)
            self._write(page, self._map(records), read=True)
            if self._finished(reply.body, records, params["limit"]):
                return
        log.info("sync.feed_paused", pages=MAX_PAGES, reason="page budget of one run spent")
        # Not a read of everything waiting at its start: freshness leaves this run out.
        self.job.counts = replace(self.job.counts, more_waiting=True)
        self.job.note = f"page budget of {MAX_PAGES} pages spent, more changes waiting"

    def _read(self, params: dict[str, Any]) -> Reply | None:
        """One destructive read under a committed marker; None when it failed and its span was
        recovered (the failed attempt may have marked records)."""
        ctx, since = self.job.ctx, self.server_now()
        with ctx.sessions.begin() as session:
            self._fence(session)
            mark_feed_pending(
                session,
                self.practice_id,
                self.resource.name,
                since=since,
                run_id=self.job.run_id,
                now=ctx.clock(),
            )
        self.job.params = params
        try:
            return ctx.client.fetch(
                self.practice_id,
                self.feed.path,
                params,
                collection=self.resource.collection,
                once=True,
            )
        except RetriableError as error:
            self.failures += 1
            log.warning("sync.feed_read_failed", status=error.status, failures=self.failures)
            if self.failures >= FAILED_READS:
                raise
            self.recover(since, reason="a read failed after it may have been served")
            return None
        except AthenaError as error:
            if not subscriptions.unusable(error):
                raise
            with ctx.sessions.begin() as session:  # a refused read served nothing
                clear_feed_pending(session, self.practice_id, self.resource.name, now=ctx.clock())
            self.unavailable(subscriptions.refusal(error))
            raise  # unreachable: unavailable() raises

    def settle_marker(self, since: datetime) -> None:
        """A marker an earlier run left: read its span again, or, when it is older than
        ``SYNC_FEED_RECOVERY_HOURS`` (the API may no longer serve those records again), letter
        the gap and have the listing read the practice once more."""
        limit = timedelta(hours=self.job.ctx.settings.sync_feed_recovery_hours)
        now = self.server_now()
        if now - since <= limit:
            self.recover(since, reason="a read of an earlier run never committed")
            return
        ctx = self.job.ctx
        start = since - timedelta(seconds=ctx.settings.sync_lastmodified_overlap_seconds)
        with ctx.sessions.begin() as session:
            self._fence(session)
            letter = gap_letter(
                self.job.unit,
                self.resource,
                start,
                now,
                hours=ctx.settings.sync_feed_recovery_hours,
                task_name=ctx.task_name,
            )
            add_request_letter(session, letter, run_id=self.job.run_id, now=ctx.clock())
            clear_feed_pending(session, self.practice_id, self.resource.name, now=ctx.clock())
            relist_after_gap(session, self.practice_id, self.resource.name, now=ctx.clock())
        self.job.counts.dead_lettered += 1
        self.job.note = f"feed gap {gap_text(start, now)} not read again: lettered"
        log.warning("sync.feed_gap_lettered", start=start.isoformat(), end=now.isoformat())

    def recover(self, since: datetime, *, reason: str) -> None:
        """Read the span since ``since`` again without marking, then clear the marker."""
        ctx = self.job.ctx
        margin = timedelta(seconds=ctx.settings.sync_lastmodified_overlap_seconds)
        before = self.job.counts.fetched
        read = list(spans(since - margin, self.server_now() + margin, RECOVERY_SPAN))
        for start, end in read:
            params = {
                **self.feed.params,
                "leaveunprocessed": "true",
                "showprocessedstartdatetime": to_eastern_param(start),
                "showprocessedenddatetime": eastern_end(end),
            }
            try:
                for page in self._replayed(params):
                    self._write(page, self._map(page.records), read=False)
            except AthenaError as error:
                if not subscriptions.unusable(error):
                    raise
                self.unavailable(subscriptions.refusal(error))  # the marker stays for later
        with ctx.sessions.begin() as session:
            clear_feed_pending(session, self.practice_id, self.resource.name, now=ctx.clock())
        recovered = self.job.counts.fetched - before
        log.info("sync.feed_recovered", reason=reason, spans=len(read), records=recovered)

    def _replayed(self, params: dict[str, Any]) -> Iterator[Page]:
        """The pages of a span read again. ``leaveunprocessed`` is documented "for testing": a
        server that refuses it with ``showprocessed…`` (400) is asked without it (serving
        processed records again marks nothing new)."""
        client, path, collection = self.job.ctx.client, self.feed.path, self.resource.collection
        self.job.params = params
        try:
            yield from client.paginate(self.practice_id, path, params, collection=collection)
            return
        except FatalError as error:
            if error.status != 400 or isinstance(error, PagingError):
                raise
            log.warning("sync.feed_replay_refused", status=error.status, error=error.api_error)
        plain = {k: v for k, v in params.items() if k != "leaveunprocessed"}
        self.job.params = plain
        yield from client.paginate(self.practice_id, path, plain, collection=collection)

    def _map(self, records: list[Any]) -> MappedPage:
        mapped = map_page(self.job, records, self.context)
        return newest_only(mapped, key=self.resource.key_column, guard=self.resource.guard_column)

    def _write(self, page: Page, mapped: MappedPage, *, read: bool) -> None:
        """The page's rows, letters and counters; with a destructive read's page, its marker
        cleared in the same transaction."""
        ctx = self.job.ctx
        with ctx.sessions.begin() as session:
            counts = write_page(self.job, session, page, mapped)
            if read:
                record_feed_read(
                    session,
                    self.practice_id,
                    self.resource.name,
                    now=ctx.clock(),
                    offset=ctx.client.clock_offset,
                )
        self.job.counts = counts

    def _fence(self, session: Any) -> None:
        """A holder that lost its lease must not start a destructive read either."""
        ctx = self.job.ctx
        if ctx.fence is not None:
            ctx.fence(session, self.job.unit)
        if ctx.on_progress is not None:
            ctx.on_progress(self.job.unit, self.job.counts)

    def _finished(self, body: Any, records: list[Any], limit: int) -> bool:
        """Whether nothing more waits after this read (or the server repeats itself)."""
        if not records:
            return True
        keys = {(self.resource.record_id(r), _stamp(r)) for r in records}
        if keys <= self.seen:
            log.warning("sync.feed_repeating", records=len(records))
            return True
        self.seen |= keys
        # ``totalcount`` is not trusted here: what it counts over a destructive feed is not
        # documented, and reading once more to be sure would double the cost of every tick.
        more = isinstance(body.get("next"), str) and bool(body["next"])
        return not (more or len(records) >= limit)


def _stamp(record: Any) -> Any:
    return record.get("lastmodified") if isinstance(record, dict) else repr(record)[:200]
