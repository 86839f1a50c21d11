"""Complete reads: every page of a listing, then what it did not see marked deleted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from worker.store.runs import save_progress
from worker.store.upsert import has_live_rows, mark_missing
from worker.sync.job import Job, Mapper, mapped_pages, pages, write_page

log = structlog.get_logger()

Scope = tuple[Any, ...] | Callable[[], tuple[Any, ...]]
"""The rows a complete read covers, or how to tell once it is complete (conditions ANDed)."""


def read_then_mark(
    job: Job,
    params: dict[str, Any],
    mapper: Mapper,
    model: Any,
    scope: Scope,
    *,
    path: str | None = None,
) -> None:
    """Read every page, then mark deleted what the complete read did not see (``path``: another
    listing than the resource's own, see ``pages_in_turn``). ``scope`` may be decided once the
    read is complete (a multi-department answer covers the departments it accounts for).

    The marking is only reached after the last page: a partial read (an error part-way) raises
    out of the loop and never marks anything. Offset paging over data that changes while it is
    read can skip a live row (a deletion upstream shifts every later row back), so marking also
    needs the listing to have held still: every page reported the same ``totalcount`` and the
    rows read add up to it. Otherwise marking waits for the next complete read, and the run
    records ``deletions_deferred``. Rows another sync wrote while this one read (another
    unit's lease: an incremental run during a reconcile) are spared, see ``mark_missing``.
    """
    began = job.ctx.clock()  # the clock write_page stamps last_seen_at with
    seen: set[str] = set()
    totals: set[int | None] = set()
    read = 0
    for page, mapped in mapped_pages(job, params, mapper, path=path):
        seen |= mapped.seen_ids
        totals.add(page.totalcount)
        read += len(page.records)
        with job.ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
        job.counts = counts
    if totals != {read}:
        log.warning(
            "sync.deletions_deferred",
            totalcounts=sorted(str(t) for t in totals),
            read=read,
            reason="the listing changed or gave no totalcount while it was read",
        )
        job.counts = replace(job.counts, deletions_deferred=True)
        return
    if callable(scope):
        scope = scope()
    if (
        read == 0
        and _holds_live_rows(job, model, scope)
        and not _empty_confirmed(job, params, path)
    ):
        log.warning(
            "sync.deletions_deferred", read=0, reason="an empty listing read again held rows"
        )
        job.counts = replace(job.counts, deletions_deferred=True)
        return
    _mark(job, model, seen, scope, began)


def _empty_confirmed(job: Job, params: dict[str, Any], path: str | None) -> bool:
    """An empty complete read would mark every live row in scope deleted: a gateway answering
    ``{"totalcount": 0}`` for a moment must not wipe a practice, so the listing is read once more
    (one request) before that, and it must be empty again."""
    listing = pages(job, params, path=path)  # the very listing that came back empty
    try:
        page = next(listing, None)
    finally:
        listing.close()
    return page is None or (not page.records and page.totalcount in (0, None))


def _holds_live_rows(job: Job, model: Any, scope: tuple[Any, ...]) -> bool:
    with job.ctx.sessions() as session:
        return has_live_rows(session, model, practice_id=job.unit.practice_id, scope_filter=scope)


def _mark(job: Job, model: Any, seen: set[str], scope: tuple[Any, ...], began: datetime) -> None:
    """Mark what the read did not see, sparing rows written since it began (less a margin for
    the clocks of different worker hosts, which stamp ``last_seen_at``, disagreeing)."""
    skew = timedelta(seconds=job.ctx.settings.sync_clock_skew_seconds)
    with job.ctx.sessions.begin() as session:
        if job.ctx.fence is not None:
            job.ctx.fence(session, job.unit)
        if job.ctx.on_progress is not None:
            job.ctx.on_progress(job.unit, job.counts)  # the lease check, before marking
        marked = mark_missing(
            session,
            model,
            practice_id=job.unit.practice_id,
            seen_ids=seen,
            scope_filter=scope,
            now=job.ctx.clock(),
            run_id=job.run_id,
            spare_written_since=began - skew,
        )
        counts = replace(
            job.counts,
            deleted=job.counts.deleted + marked.deleted,
            deletions_deferred=job.counts.deletions_deferred or marked.spared > 0,
        )
        save_progress(session, job.run_id, counts)
    job.counts = counts
    if marked.spared:
        log.info("sync.deletions_deferred", spared=marked.spared, reason="written while read")
