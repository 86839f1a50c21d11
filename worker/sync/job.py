"""A unit of work in progress and the page loop every resource shares.

Every page is one transaction holding its rows, its dead letters and the run's counters, so a
crash loses nothing and a re-run repeats nothing that matters.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session, sessionmaker

from models import DeadLetter
from worker.athena.client import AthenaClient, Page
from worker.resources import get_resource as resource_for
from worker.settings import Settings
from worker.store.letters import add_record_letters, resolve_record_letters
from worker.store.rows import write_rows
from worker.store.runs import Counts, save_progress, utcnow
from worker.store.upsert import prepare_page
from worker.sync.pages import MappedPage, map_records
from worker.sync.prefetch import fetch_ahead
from worker.units import Unit

log = structlog.get_logger()


class SourceUnavailable(Exception):
    """The unit's source cannot be read for this practice now (a changed-data feed without an
    active subscription): the run is recorded ``skipped`` with this reason, no letter; another
    source (the listing) covers the practice meanwhile."""


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
    task_name: str | None = None
    """The Celery task running this context's units (kept on their letters), if any."""
    clock: Callable[[], datetime] = utcnow
    on_progress: ProgressHook | None = None
    fence: FenceHook | None = None

    @property
    def prepare_writes(self) -> bool:
        """Whether pages' writes are made ahead (Postgres: see ``prepare_page``)."""
        bind = self.sessions.kw.get("bind")
        return bind is not None and bind.dialect.name == "postgresql"


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


def pages(
    job: Job, params: dict[str, Any], *, path: str | None = None
) -> Generator[Page, None, None]:
    """The listing's pages (``path``: another listing than the resource's own), each fetched
    while the one before it is written (fetch-ahead)."""
    return (page for _, page, _ in pages_in_turn(job, [params], path=path))


def mapped_pages(
    job: Job, params: dict[str, Any], mapper: Mapper, *, path: str | None = None
) -> Iterator[tuple[Page, MappedPage]]:
    """The listing's pages with their mapped rows, both made ahead of the write (see below)."""
    for _, page, mapped in pages_in_turn(job, [params], mapper, path=path):
        assert mapped is not None
        yield page, mapped


def pages_in_turn(
    job: Job,
    listings: Sequence[dict[str, Any]],
    mapper: Mapper | None = None,
    *,
    path: str | None = None,
) -> Iterator[tuple[int, Page, MappedPage | None]]:
    """Every page of several listings, one listing after another, as (listing index, page,
    the page mapped by ``mapper`` or None).

    One fetch-ahead thread reads them all, so the first page of a listing is fetched while the
    last page of the one before it is written. The thread also maps each page (mapping is pure:
    no session, no I/O), so that Python work overlaps Postgres running the previous page's
    upsert. ``job.params`` names the listing of the page in hand, or of the request that failed
    (for its dead letter). ``path``: another listing of the resource than its own ``path`` (the
    multi-department one).
    """
    resource = resource_for(job.unit.resource)
    client, practice_id = job.ctx.client, job.unit.practice_id
    path = path or resource.path
    fetching = [0]

    def read() -> Iterator[tuple[int, Page, MappedPage | None]]:
        for index, params in enumerate(listings):
            fetching[0] = index
            for page in client.paginate(practice_id, path, params, collection=resource.collection):
                yield index, page, (mapper(page.records) if mapper is not None else None)

    job.params = listings[0] if listings else {}
    ahead = fetch_ahead(read)  # one page ahead: two gained nothing once pages were prepared
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
    resource = resource_for(unit.resource)
    now = job.ctx.clock()
    result, refused = write_rows(
        session,
        resource,
        mapped.rows,
        mapped.sources,
        run_id=job.run_id,
        now=now,
        prepared=mapped.prepared,
    )
    for letter in refused:
        mapped.bad.append(letter)
        mapped.good_ids.remove(str(letter.record_id))
    counts.fetched += len(page.records)
    counts.inserted += result.inserted
    counts.updated += result.updated
    counts.unchanged += result.unchanged
    counts.dead_lettered += add_record_letters(
        session,
        mapped.bad,
        resource=unit.resource,
        practice_id=unit.practice_id,
        department_id=unit.department_id,
        path=page.path,
        run_id=job.run_id,
        now=now,
        department_field=resource.department_field,
    )
    if job.resolve_letters:
        resolve_record_letters(
            session,
            resource=unit.resource,
            practice_id=unit.practice_id,
            landed=_landed(mapped, resource.key_column, resource.guard_column),
            guard_field=resource.guard_field,
            now=now,
        )
    counts.api_calls = job.ctx.client.stats.requests - job.calls_base
    if job.ctx.fence is not None:
        job.ctx.fence(session, unit)
    save_progress(session, job.run_id, counts)
    log.debug(
        "sync.page_upserted",
        page=page.number,
        records=len(page.records),
        inserted=result.inserted,
        updated=result.updated,
        dead_lettered=len(mapped.bad),
    )
    if job.ctx.on_progress is not None:
        job.ctx.on_progress(unit, counts)
    return counts


def _landed(mapped: MappedPage, key: str, guard: str | None) -> dict[str, Any]:
    """Each clean id of the page with its row's guard time (None: unknown, or no guard); an id
    given twice, its last row (the one the upsert keeps)."""
    clean = set(mapped.good_ids)
    rows = (row for row in mapped.rows if str(row[key]) in clean)
    return {str(row[key]): row.get(guard) if guard else None for row in rows}


def map_page(
    job: Job, records: list[Any], context: dict[str, Any], *, prepare: bool = True
) -> MappedPage:
    """The page's rows and letters; on Postgres also its write made ahead (``prepare_mapped``),
    as mappers run in the fetch-ahead thread: the writing thread then only waits for Postgres.
    ``prepare=False``: a piece of a page, prepared once whole by the caller."""
    resource = resource_for(job.unit.resource)
    mapped = map_records(
        records, resource=resource, practice_id=job.unit.practice_id, context=context
    )
    return prepare_mapped(job, mapped) if prepare else mapped


def prepare_mapped(job: Job, mapped: MappedPage) -> MappedPage:
    """``mapped`` with its Postgres write made ahead (``prepare_page``), on Postgres."""
    if job.ctx.prepare_writes:
        resource = resource_for(job.unit.resource)
        mapped.prepared = prepare_page(
            resource.model,
            mapped.rows,
            guard_column=resource.guard_column,
            volatile=resource.volatile_fields,
        )
    return mapped
