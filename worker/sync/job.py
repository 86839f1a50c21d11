"""A unit of work in progress and the page loop every resource shares.

Every page is one transaction holding its rows, its dead letters and the run's counters, so a
crash loses nothing and a re-run repeats nothing that matters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session, sessionmaker

from models import DeadLetter
from tasks import get_resource as resource_for
from worker.athena.client import AthenaClient, Page
from worker.parse import ambiguous_eastern
from worker.settings import Settings
from worker.sync.deadletters import BadRecordLetter, add_record_letters, resolve_record_letters
from worker.sync.pages import MappedPage, map_records
from worker.sync.prefetch import fetch_ahead
from worker.sync.runs import Counts, save_progress, utcnow
from worker.sync.units import Unit
from worker.sync.upsert import UpsertCounts, mark_missing, upsert_page

log = structlog.get_logger()

ProgressHook = Callable[[Unit, Counts], None]
# Called inside every write transaction of a unit; raises to refuse the write (lease fencing).
FenceHook = Callable[[Session, Unit], None]


@dataclass
class SyncContext:
    """What every unit of work needs: the API client, the database and the settings."""

    client: AthenaClient
    sessions: sessionmaker[Session]
    settings: Settings
    run_group: str
    task_id: str | None = None
    clock: Callable[[], datetime] = utcnow
    on_progress: ProgressHook | None = None
    fence: FenceHook | None = None


@dataclass
class Job:
    """One unit of work in progress: its run row, counters and the request it is on."""

    ctx: SyncContext
    unit: Unit
    run_id: int
    counts: Counts = field(default_factory=Counts)
    calls_base: int = 0
    resolve_letters: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # for the summary, e.g. that the watermark was kept

    def count_calls(self) -> None:
        """API calls this unit made so far (retries included)."""
        self.counts.api_calls = self.ctx.client.stats.requests - self.calls_base


def has_open_record_letters(ctx: SyncContext, unit: Unit) -> bool:
    """Whether pages must resolve letters of records that now map cleanly (rarely true)."""
    with ctx.sessions() as session:
        found = session.scalar(
            sa.select(DeadLetter.id)
            .where(
                DeadLetter.kind == "record",
                DeadLetter.state == "open",
                DeadLetter.resource == unit.resource,
                DeadLetter.practice_id == unit.practice_id,
            )
            .limit(1)
        )
    return found is not None


Mapper = Callable[[list[Any]], MappedPage]


def pages(job: Job, params: dict[str, Any]) -> Iterator[Page]:
    """The listing's pages, each fetched while the one before it is written (fetch-ahead)."""
    return (page for _, page, _ in pages_in_turn(job, [params]))


def mapped_pages(
    job: Job, params: dict[str, Any], mapper: Mapper
) -> Iterator[tuple[Page, MappedPage]]:
    """The listing's pages with their mapped rows, both made ahead of the write (see below)."""
    for _, page, mapped in pages_in_turn(job, [params], mapper):
        assert mapped is not None
        yield page, mapped


def pages_in_turn(
    job: Job, listings: Sequence[dict[str, Any]], mapper: Mapper | None = None
) -> Iterator[tuple[int, Page, MappedPage | None]]:
    """Every page of several listings, one listing after another, as (listing index, page,
    the page mapped by ``mapper`` or None).

    One fetch-ahead thread reads them all, so the first page of a listing is fetched while the
    last page of the one before it is written. The thread also maps each page (mapping is pure:
    no session, no I/O), so that Python work overlaps Postgres running the previous page's
    upsert. ``job.params`` names the listing of the page in hand, or of the request that failed
    (for its dead letter).
    """
    resource = resource_for(job.unit.resource)
    client, practice_id = job.ctx.client, job.unit.practice_id
    fetching = [0]

    def read() -> Iterator[tuple[int, Page, MappedPage | None]]:
        for index, params in enumerate(listings):
            fetching[0] = index
            for page in client.paginate(
                practice_id, resource.path, params, collection=resource.collection
            ):
                yield index, page, (mapper(page.records) if mapper is not None else None)

    job.params = listings[0] if listings else {}
    ahead = fetch_ahead(read)
    try:
        while True:
            try:
                index, page, mapped = next(ahead)
            except StopIteration:
                return
            except Exception:
                job.params = listings[fetching[0]]
                raise
            job.params = listings[index]
            yield index, page, mapped
    finally:
        ahead.close()


def write_page(job: Job, session: Session, page: Page, mapped: MappedPage) -> Counts:
    """Rows, dead letters and counters of one page, in the caller's transaction.

    Returns the counters including this page; the caller adopts them (``job.counts = ...``)
    only once the transaction committed, so a rolled-back page is never counted.
    """
    unit, counts = job.unit, replace(job.counts)
    now = job.ctx.clock()
    result = _upsert(job, session, mapped, now)
    counts.fetched += len(page.records)
    counts.inserted += result.inserted
    counts.updated += result.updated
    counts.unchanged += result.unchanged
    counts.dead_lettered += add_record_letters(
        session, mapped.bad, resource=unit.resource, practice_id=unit.practice_id,
        department_id=unit.department_id, path=page.path, run_id=job.run_id, now=now,
    )  # fmt: skip
    if job.resolve_letters:
        resolve_record_letters(
            session, resource=unit.resource, practice_id=unit.practice_id,
            record_ids=mapped.good_ids, now=now,
        )  # fmt: skip
    counts.api_calls = job.ctx.client.stats.requests - job.calls_base
    if job.ctx.fence is not None:
        job.ctx.fence(session, unit)
    save_progress(session, job.run_id, counts)
    log.debug(
        "sync.page_upserted", page=page.number, records=len(page.records),
        inserted=result.inserted, updated=result.updated, dead_lettered=len(mapped.bad),
    )  # fmt: skip
    if job.ctx.on_progress is not None:
        job.ctx.on_progress(unit, counts)
    return counts


REFUSED = (sa.exc.DataError, sa.exc.IntegrityError)


def _upsert(job: Job, session: Session, mapped: MappedPage, now: datetime) -> UpsertCounts:
    """The page in one statement; if Postgres refuses a value in it (a NUL character, a number
    too large), find the refused rows one by one in savepoints and dead-letter only them."""
    resource = resource_for(job.unit.resource)
    options: dict[str, Any] = {"run_id": job.run_id, "now": now}
    if session.get_bind().dialect.name != "postgresql":
        return _guarded(session, resource, mapped.rows, options)
    try:
        with session.begin_nested():
            return _guarded(session, resource, mapped.rows, options)
    except REFUSED:
        log.warning("sync.page_refused", rows=len(mapped.rows))
    total = UpsertCounts()
    for row, record in zip(list(mapped.rows), list(mapped.sources), strict=True):
        try:
            with session.begin_nested():
                total += _guarded(session, resource, [row], options)
        except REFUSED as exc:
            ident = str(row[resource.key_column])
            reason = f"the database refused the record ({db_reason(exc)})"
            mapped.bad.append(BadRecordLetter(record, ident, reason))
            mapped.good_ids.remove(ident)
    return total


def _guarded(
    session: Session, resource: Any, rows: list[dict[str, Any]], options: dict[str, Any]
) -> UpsertCounts:
    """Upsert with the resource's "never older over newer" guard. A guard time in the hour that
    repeats when daylight time ends was read as its first pass but may mean the second, an hour
    later: such a row (rare) is written alone, refused only if the stored time is later still."""
    guard = resource.guard_column
    if guard is None:
        return upsert_page(session, resource.model, rows, **options)
    ordered: list[dict[str, Any]] = []
    uncertain: list[dict[str, Any]] = []
    for row in rows:
        (uncertain if ambiguous_eastern(row.get(guard)) else ordered).append(row)
    total = upsert_page(session, resource.model, ordered, guard_column=guard, **options)
    for row in uncertain:
        ceiling = row[guard] + timedelta(hours=1)
        total += upsert_page(
            session, resource.model, [row], guard_column=guard, guard_ceiling=ceiling, **options
        )
    return total


def db_reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's error class and SQLSTATE, never its message (it quotes the data)."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "diag", None), "sqlstate", None
    )
    return f"{type(orig).__name__}, SQLSTATE {state}" if state else type(orig).__name__


def map_page(job: Job, records: list[Any], context: dict[str, Any]) -> MappedPage:
    resource = resource_for(job.unit.resource)
    return map_records(
        records, resource=resource, practice_id=job.unit.practice_id, context=context
    )


def read_then_mark(
    job: Job,
    params: dict[str, Any],
    mapper: Mapper,
    model: Any,
    scope: tuple[Any, ...],
) -> None:
    """Read every page, then mark deleted what the complete read did not see.

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
    for page, mapped in mapped_pages(job, params, mapper):
        seen |= mapped.seen_ids
        totals.add(page.totalcount)
        read += len(page.records)
        with job.ctx.sessions.begin() as session:
            counts = write_page(job, session, page, mapped)
        job.counts = counts
    if totals != {read}:
        log.warning(
            "sync.deletions_deferred", totalcounts=sorted(str(t) for t in totals), read=read,
            reason="the listing changed or gave no totalcount while it was read",
        )  # fmt: skip
        job.counts = replace(job.counts, deletions_deferred=True)
        return
    _mark(job, model, seen, scope, began)


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
            session, model, practice_id=job.unit.practice_id, seen_ids=seen,
            scope_filter=scope, now=job.ctx.clock(), run_id=job.run_id,
            spare_written_since=began - skew,
        )  # fmt: skip
        counts = replace(
            job.counts, deleted=job.counts.deleted + marked.deleted,
            deletions_deferred=job.counts.deletions_deferred or marked.spared > 0,
        )  # fmt: skip
        save_progress(session, job.run_id, counts)
    job.counts = counts
    if marked.spared:
        log.info("sync.deletions_deferred", spared=marked.spared, reason="written while read")
