"""Replaying a ``record`` letter: re-map the copy kept in Postgres and store it, unless a newer
sync wrote the row since (or the record was deleted upstream). Nothing is logged but ids."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from models import DeadLetter
from worker.parse import BadRecord
from worker.resources import REGISTRY, ReadStrategy, get_resource
from worker.store.departments import department_zones
from worker.store.upsert import upsert_page
from worker.sync.job import SyncContext
from worker.sync.replay_state import ReplayOutcome, bump_in, resolve_in


def replay_record(ctx: SyncContext, letter: DeadLetter, *, dry_run: bool) -> ReplayOutcome:
    """Re-map the stored record; store it and resolve the letter when it now maps."""
    known = letter.resource in REGISTRY
    if not known or letter.practice_id is None or letter.record is None:
        return ReplayOutcome(letter.id, "record", "none", "skipped", "resource or record unknown")
    resource = get_resource(letter.resource)
    action = f"re-map {letter.resource} record {letter.record_id or '(no id)'}"
    with ctx.sessions.begin() as session:
        try:
            context = _context_for(session, letter.resource, letter.practice_id)
            row = resource.to_row(letter.record, practice_id=letter.practice_id, **context)
        except BadRecord as exc:
            if dry_run:
                return ReplayOutcome(letter.id, "record", action, "would fail", str(exc))
            bump_in(session, letter.id, now=ctx.clock(), message=str(exc))
            return ReplayOutcome(letter.id, "record", action, "failed", str(exc))
        newer = _superseded(session, resource, row, letter)
        if newer is not None:
            if not dry_run:
                resolve_in(session, letter.id, now=ctx.clock(), note=f"superseded: {newer}")
            return ReplayOutcome(letter.id, "record", action, "superseded", newer)
        if dry_run:
            return ReplayOutcome(letter.id, "record", action, "would replay", "record now maps")
        counts = upsert_page(
            session,
            resource.model,
            [row],
            run_id=None,
            now=ctx.clock(),
            guard_column=resource.guard_column,
            volatile=resource.volatile_fields,
        )
        if not (counts.inserted or counts.updated):
            # The stored row is the same, or newer by its lastmodified (the guard kept it).
            why = "the stored row is as new or newer; the record was not written"
            resolve_in(session, letter.id, now=ctx.clock(), note=f"superseded: {why}")
            return ReplayOutcome(letter.id, "record", action, "superseded", why)
        resolve_in(session, letter.id, now=ctx.clock(), note="record re-mapped and stored")
    return ReplayOutcome(letter.id, "record", action, "resolved")


def _context_for(session: Session, resource: str, practice_id: str) -> dict[str, Any]:
    if get_resource(resource).read != ReadStrategy.BY_DEPARTMENT:
        return {}
    return {"timezones": department_zones(session, practice_id)}


def _superseded(
    session: Session, resource: Any, row: Mapping[str, Any], letter: DeadLetter
) -> str | None:
    """Why the stored snapshot must not be written (a newer sync wrote the row, or the record
    was deleted upstream since), or None."""
    key = tuple(row[column.name] for column in resource.model.__table__.primary_key.columns)
    current = session.get(resource.model, key)
    if current is None:
        return None
    if current.deleted_at is not None:
        return "the record was deleted upstream since"
    if current.last_seen_at > letter.last_failed_at:
        return "a newer version was synced since"
    return None
