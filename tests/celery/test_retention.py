"""Resolved dead letters older than the retention are purged; nothing else is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from models import DeadLetter
from worker.db import make_engine, session_factory, upgrade
from worker.sync.retention import purge_resolved_letters

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def letter(key: str, state: str, resolved_days_ago: int | None) -> DeadLetter:
    resolved = None if resolved_days_ago is None else NOW - timedelta(days=resolved_days_ago)
    return DeadLetter(
        kind="request", resource="providers", practice_id="195900", error_class="client_error",
        first_failed_at=NOW - timedelta(days=90), last_failed_at=NOW - timedelta(days=90),
        state=state, resolved_at=resolved, dedup_key=key,
    )  # fmt: skip


def test_purge_keeps_open_discarded_and_recent_letters(fresh_pg_url: str) -> None:
    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as session:
            session.add_all([
                letter("old-resolved", "resolved", 31),
                letter("new-resolved", "resolved", 29),
                letter("old-discarded", "discarded", 90),
                letter("open", "open", None),
            ])  # fmt: skip
        with sessions.begin() as session:
            assert purge_resolved_letters(session, retention_days=30, now=NOW) == 1
        with sessions() as session:
            kept = set(session.scalars(sa.select(DeadLetter.dedup_key)))
        assert kept == {"new-resolved", "old-discarded", "open"}
    finally:
        engine.dispose()
