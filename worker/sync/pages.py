"""Turning one page of API records into rows and dead letters (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from worker.jsonsafe import Storable
from worker.parse import BadRecord
from worker.store.letters import BadRecordLetter
from worker.store.upsert import Prepared


@dataclass
class MappedPage:
    """The good rows of a page, its bad records, and every id it named (good or bad)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    """The record each row was mapped from (same order), for dead-lettering a refused row."""
    bad: list[BadRecordLetter] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    good_ids: list[str] = field(default_factory=list)
    prepared: Prepared | None = None
    """The rows' Postgres write made ahead (``prepare_page``), valid while ``rows`` is
    unchanged (a row taken out or added makes it unused)."""

    def extend(self, other: MappedPage) -> None:
        """Append another mapped page's results to this one."""
        self.prepared = None
        self.rows += other.rows
        self.sources += other.sources
        self.bad += other.bad
        self.seen_ids |= other.seen_ids
        self.good_ids += other.good_ids


def map_records(
    records: Iterable[Any], *, resource: Any, practice_id: str, context: dict[str, Any]
) -> MappedPage:
    """Map each record with the resource's pure ``to_row``; bad ones become letters. Records the
    strict decoder read (``Storable``) are mapped with ``storable=True``: nothing in them needs
    looking for values a database cannot hold."""
    page = MappedPage()
    key = resource.key_column
    if isinstance(records, Storable):
        context = {**context, "storable": True}
    for record in records:
        ident = resource.record_id(record)
        if ident is not None:
            # A record we could not map still exists upstream: never mark it deleted.
            page.seen_ids.add(ident)
        try:
            if not isinstance(record, dict):
                raise BadRecord(f"record is a {type(record).__name__}, not an object")
            row = resource.to_row(record, practice_id=practice_id, **context)
        except BadRecord as exc:
            page.bad.append(BadRecordLetter(record, ident, str(exc), exc.field))
            continue
        page.rows.append(row)
        page.sources.append(record)
        page.good_ids.append(str(row[key]))
    return page


def newest_only(page: MappedPage, *, key: str, guard: str | None) -> MappedPage:
    """One row per id, the newest by ``guard`` (the later one on a tie, or when neither has a
    time; one with a time over one without): a feed may deliver the same record twice in one
    page, and one upsert statement cannot write a row twice."""
    chosen: dict[str, int] = {}
    for index, row in enumerate(page.rows):
        ident = str(row[key])
        held = chosen.get(ident)
        if held is None or _not_older(row, page.rows[held], guard):
            chosen[ident] = index
    if len(chosen) == len(page.rows):
        return page
    keep = sorted(chosen.values())
    return MappedPage(
        rows=[page.rows[i] for i in keep],
        sources=[page.sources[i] for i in keep],
        bad=page.bad,
        seen_ids=page.seen_ids,
        good_ids=[page.good_ids[i] for i in keep],
    )


def _not_older(row: dict[str, Any], other: dict[str, Any], guard: str | None) -> bool:
    """Whether ``row`` may replace ``other``: as the upsert's guard, a row without a time never
    replaces one with a time."""
    if guard is None or other.get(guard) is None:
        return True
    return row.get(guard) is not None and bool(row[guard] >= other[guard])
