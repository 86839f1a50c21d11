"""upsert_page and mark_missing on real Postgres and SQLite: counts, zero-write re-syncs, guards."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from models import Appointment, Provider
from worker.store.upsert import Marked, UpsertCounts, mark_missing, upsert_page

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


def provider(pid: str, practice: str = "195900", **fields: Any) -> dict[str, Any]:
    raw = {"providerid": int(pid), "firstname": fields.get("first_name", "Ana"), "lastname": "Ruiz"}
    return {
        "practice_id": practice,
        "provider_id": pid,
        "first_name": raw["firstname"],
        "last_name": "Ruiz",
        "raw": raw,
    }


def appointment(aid: str, *, status: str = "f", modified: datetime | None = T0) -> dict[str, Any]:
    return {
        "practice_id": "195900",
        "appointment_id": aid,
        "department_id": "1",
        "status": status,
        "start_at": datetime(2024, 6, 3, 12, 0, tzinfo=UTC),
        "local_date": date(2024, 6, 3),
        "local_time": time(8, 0),
        "timezone_name": "US/Eastern",
        "last_modified_at": modified,
        "raw": {"appointmentid": aid, "appointmentstatus": status, "lm": str(modified)},
    }


def write_counter(session: Session) -> int:
    """Rows inserted or updated so far on this connection, as counted by the database itself.

    Postgres: this backend's not-yet-flushed table statistics, the session's own temporary
    tables left out (the page is staged there: no WAL, gone at commit); SQLite:
    ``total_changes()``. Compare two readings taken in the same session.
    """
    if session.get_bind().dialect.name == "postgresql":
        query = (
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0) FROM pg_stat_xact_user_tables"
            " WHERE schemaname NOT LIKE 'pg\\_temp%'"
        )
        return int(session.execute(sa.text(query)).scalar_one())
    return int(session.execute(sa.text("SELECT total_changes()")).scalar_one())


@pytest.fixture
def session(engine):
    with Session(engine) as s:
        yield s


def test_first_page_inserts_every_row(session):
    counts = upsert_page(session, Provider, [provider("1"), provider("2")], run_id=7, now=T0)
    session.commit()
    assert counts == UpsertCounts(inserted=2, updated=0, unchanged=0)
    row = session.get(Provider, ("195900", "1"))
    assert row is not None
    assert (row.first_name, row.raw["providerid"], row.last_sync_run_id) == ("Ana", 1, 7)
    assert row.first_seen_at == row.last_seen_at == T0
    assert row.deleted_at is None


def test_unchanged_page_writes_zero_rows(session):
    page = [provider(str(i)) for i in range(1, 51)]
    upsert_page(session, Provider, page, run_id=1, now=T0)
    session.commit()

    before = write_counter(session)
    counts = upsert_page(session, Provider, page, run_id=2, now=T1)
    assert write_counter(session) - before == 0
    session.commit()

    assert counts == UpsertCounts(inserted=0, updated=0, unchanged=50)
    row = session.get(Provider, ("195900", "7"))
    assert row is not None
    assert (row.last_seen_at, row.last_sync_run_id) == (T0, 1)


def test_unchanged_page_leaves_pg_stat_user_tables_untouched(fresh_pg_url):
    from worker.db import make_engine, upgrade

    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    page = [provider(str(i)) for i in range(1, 21)]
    try:
        with engine.connect() as connection, Session(connection) as s:
            upsert_page(s, Provider, page, run_id=1, now=T0)
            s.commit()
            before = _n_tup_upd(connection)
            upsert_page(s, Provider, page, run_id=2, now=T1)
            s.commit()
            assert _n_tup_upd(connection) == before
            upsert_page(s, Provider, [provider("3", first_name="Zoë")], run_id=3, now=T2)
            s.commit()
            assert _n_tup_upd(connection) == before + 1
    finally:
        engine.dispose()


def _n_tup_upd(connection: sa.Connection) -> int:
    # Statistics reach the shared view asynchronously: flush this backend's, drop the snapshot.
    connection.execute(sa.text("SELECT pg_stat_force_next_flush()"))
    connection.commit()
    connection.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
    query = "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'providers'"
    value = int(connection.execute(sa.text(query)).scalar_one())
    connection.commit()
    return value


def test_changed_row_is_updated_and_others_are_not(session):
    upsert_page(session, Provider, [provider("1"), provider("2")], run_id=1, now=T0)
    session.commit()

    page = [provider("1"), provider("2", first_name="Zoë"), provider("3")]
    before = write_counter(session)
    counts = upsert_page(session, Provider, page, run_id=2, now=T1)
    assert write_counter(session) - before == 2
    session.commit()

    assert counts == UpsertCounts(inserted=1, updated=1, unchanged=1)
    changed = session.get(Provider, ("195900", "2"))
    assert changed is not None
    assert (changed.first_name, changed.raw["firstname"]) == ("Zoë", "Zoë")
    assert (changed.first_seen_at, changed.last_seen_at, changed.last_sync_run_id) == (T0, T1, 2)


def test_key_order_of_raw_is_not_a_change(session):
    row = provider("1")
    upsert_page(session, Provider, [row], run_id=1, now=T0)
    session.commit()
    reordered = {**row, "raw": dict(reversed(list(row["raw"].items())))}
    assert list(reordered["raw"]) != list(row["raw"])
    assert upsert_page(session, Provider, [reordered], run_id=2, now=T1).unchanged == 1


def test_duplicate_keys_in_one_page_keep_the_last(session):
    page = [provider("1", first_name="Old"), provider("2"), provider("1", first_name="New")]
    counts = upsert_page(session, Provider, page, run_id=1, now=T0)
    session.commit()
    # Every row given is accounted for: the superseded duplicate counts as unchanged.
    assert counts == UpsertCounts(inserted=2, updated=0, unchanged=1)
    row = session.get(Provider, ("195900", "1"))
    assert row is not None and row.first_name == "New"


def test_same_id_in_two_practices_is_two_rows(session):
    page = [provider("1", practice="195900"), provider("1", practice="1128700")]
    assert upsert_page(session, Provider, page, run_id=1, now=T0).inserted == 2


def test_older_lastmodified_never_overwrites_newer(session):
    guard = "last_modified_at"
    upsert_page(
        session, Appointment, [appointment("9", modified=T1)], run_id=1, now=T0, guard_column=guard
    )
    session.commit()

    stale = appointment("9", status="x", modified=T0)
    before = write_counter(session)
    counts = upsert_page(session, Appointment, [stale], run_id=2, now=T1, guard_column=guard)
    assert write_counter(session) - before == 0
    session.commit()
    assert counts == UpsertCounts(inserted=0, updated=0, unchanged=1)
    row = session.get(Appointment, ("195900", "9"))
    assert row is not None and (row.status, row.last_modified_at) == ("f", T1)

    newer = appointment("9", status="x", modified=T2)
    counts = upsert_page(session, Appointment, [newer], run_id=3, now=T2, guard_column=guard)
    session.commit()
    assert counts.updated == 1
    session.refresh(row)
    assert (row.status, row.last_modified_at, row.last_sync_run_id) == ("x", T2, 3)


def test_same_lastmodified_with_other_content_still_updates(session):
    guard = "last_modified_at"
    upsert_page(
        session, Appointment, [appointment("9", modified=T1)], run_id=1, now=T0, guard_column=guard
    )
    session.commit()
    again = appointment("9", status="2", modified=T1)
    assert (
        upsert_page(session, Appointment, [again], run_id=2, now=T1, guard_column=guard).updated
        == 1
    )


def test_missing_lastmodified_does_not_block_updates(session):
    guard = "last_modified_at"
    upsert_page(
        session,
        Appointment,
        [appointment("9", modified=None)],
        run_id=1,
        now=T0,
        guard_column=guard,
    )
    session.commit()
    dated = appointment("9", status="x", modified=T0)
    assert (
        upsert_page(session, Appointment, [dated], run_id=2, now=T1, guard_column=guard).updated
        == 1
    )


def test_a_row_without_lastmodified_never_overwrites_one_with_it(session):
    guard = "last_modified_at"
    upsert_page(
        session, Appointment, [appointment("9", modified=T1)], run_id=1, now=T0, guard_column=guard
    )
    session.commit()

    untimed = appointment("9", status="x", modified=None)
    before = write_counter(session)
    counts = upsert_page(session, Appointment, [untimed], run_id=2, now=T1, guard_column=guard)
    assert write_counter(session) - before == 0
    session.commit()
    assert counts == UpsertCounts(inserted=0, updated=0, unchanged=1)
    row = session.get(Appointment, ("195900", "9"))
    assert row is not None and (row.status, row.last_modified_at, row.last_sync_run_id) == (
        "f",
        T1,
        1,
    )


def test_a_row_without_lastmodified_overwrites_one_without_it_once(session):
    guard = "last_modified_at"
    upsert_page(
        session,
        Appointment,
        [appointment("9", modified=None)],
        run_id=1,
        now=T0,
        guard_column=guard,
    )
    session.commit()
    untimed = appointment("9", status="x", modified=None)
    counts = upsert_page(session, Appointment, [untimed], run_id=2, now=T1, guard_column=guard)
    session.commit()
    assert counts.updated == 1
    before = write_counter(session)
    again = upsert_page(session, Appointment, [untimed], run_id=3, now=T2, guard_column=guard)
    assert write_counter(session) - before == 0
    assert again == UpsertCounts(inserted=0, updated=0, unchanged=1)


def test_an_untimed_row_of_the_repeated_hour_path_is_refused_too(session):
    guard = "last_modified_at"
    upsert_page(
        session, Appointment, [appointment("9", modified=T1)], run_id=1, now=T0, guard_column=guard
    )
    session.commit()
    untimed = appointment("9", status="x", modified=None)
    counts = upsert_page(
        session,
        Appointment,
        [untimed],
        run_id=2,
        now=T1,
        guard_column=guard,
        guard_ceiling=T2,
    )
    assert counts.updated == 0


def test_without_a_guard_an_older_row_overwrites(session):
    upsert_page(session, Appointment, [appointment("9", modified=T1)], run_id=1, now=T0)
    stale = appointment("9", status="x", modified=T0)
    assert upsert_page(session, Appointment, [stale], run_id=2, now=T1).updated == 1


def test_mark_missing_then_a_returning_row_is_revived(session):
    upsert_page(session, Provider, [provider(str(i)) for i in (1, 2, 3)], run_id=1, now=T0)
    upsert_page(session, Provider, [provider("2", practice="other")], run_id=1, now=T0)
    session.commit()

    marked = mark_missing(
        session, Provider, practice_id="195900", seen_ids={"1", "3"}, now=T1, run_id=2
    )
    session.commit()
    assert marked == Marked(deleted=1, spared=0)
    gone = session.get(Provider, ("195900", "2"))
    assert gone is not None and (gone.deleted_at, gone.last_sync_run_id) == (T1, 2)
    other = session.get(Provider, ("other", "2"))
    assert other is not None and other.deleted_at is None

    # Already-deleted rows are not marked again.
    again = mark_missing(session, Provider, practice_id="195900", seen_ids=set(), now=T2, run_id=3)
    session.commit()
    assert again == Marked(deleted=2)
    session.refresh(gone)
    assert gone.deleted_at == T1

    counts = upsert_page(session, Provider, [provider("2")], run_id=4, now=T2)
    session.commit()
    assert counts == UpsertCounts(inserted=0, updated=1, unchanged=0)
    session.refresh(gone)
    assert (gone.deleted_at, gone.last_seen_at, gone.last_sync_run_id) == (None, T2, 4)


def test_mark_missing_stays_inside_its_scope(session):
    rows = [appointment(str(i)) for i in range(1, 5)]
    rows[3] = {**rows[3], "local_date": date(2024, 7, 15)}
    upsert_page(session, Appointment, rows, run_id=1, now=T0)
    session.commit()

    marked = mark_missing(
        session,
        Appointment,
        practice_id="195900",
        seen_ids={"1"},
        scope_filter=(
            Appointment.department_id == "1",
            Appointment.local_date >= date(2024, 6, 1),
            Appointment.local_date <= date(2024, 6, 30),
        ),
        now=T1,
        run_id=2,
    )
    session.commit()
    assert marked == Marked(deleted=2)
    deleted = session.scalars(
        sa.select(Appointment.appointment_id).where(Appointment.deleted_at.is_not(None))
    )
    assert sorted(deleted) == ["2", "3"]


def test_mark_missing_spares_rows_written_since_the_read_began(session):
    # "1" and "2" were stored before the read began (T1); "3" was written at T2 by another
    # sync while the read was under way, so the read may simply have passed it too early.
    upsert_page(session, Provider, [provider("1"), provider("2")], run_id=1, now=T0)
    upsert_page(session, Provider, [provider("3")], run_id=2, now=T2)
    session.commit()
    marked = mark_missing(
        session,
        Provider,
        practice_id="195900",
        seen_ids={"1"},
        now=T2,
        run_id=3,
        spare_written_since=T1,
    )
    session.commit()
    assert marked == Marked(deleted=1, spared=1)
    live = session.scalars(sa.select(Provider.provider_id).where(Provider.deleted_at.is_(None)))
    assert sorted(live) == ["1", "3"]
    # At the boundary a row written at the very instant the read began is spared too.
    again = mark_missing(
        session,
        Provider,
        practice_id="195900",
        seen_ids={"1"},
        now=T2,
        run_id=4,
        spare_written_since=T2,
    )
    assert again == Marked(deleted=0, spared=1)


def test_a_row_another_process_marks_meanwhile_is_not_counted_spared(session, engine):
    """Between the marking's SELECT of live rows and its UPDATE, another process marks "2"
    deleted: it was neither marked here nor spared, so no deletion is reported deferred."""
    upsert_page(session, Provider, [provider("1"), provider("2"), provider("3")], run_id=1, now=T0)
    session.commit()
    real_execute = session.execute
    done: list[bool] = []

    def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(statement, sa.Update) and not done:
            done.append(True)
            with Session(engine) as other:
                other.execute(
                    sa.update(Provider)
                    .where(Provider.provider_id == "2")
                    .values(deleted_at=T1, last_sync_run_id=9)
                )
                other.commit()
        return real_execute(statement, *args, **kwargs)

    session.execute = execute  # type: ignore[method-assign]
    marked = mark_missing(
        session,
        Provider,
        practice_id="195900",
        seen_ids={"1"},
        now=T2,
        run_id=3,
        spare_written_since=T1,
    )
    session.commit()
    assert done and marked == Marked(deleted=1, spared=0)


def test_pages_wider_than_one_statement_are_split_and_counted(session):
    page = [appointment(str(i)) for i in range(2000)]
    assert upsert_page(session, Appointment, page, run_id=1, now=T0).inserted == 2000
    session.commit()
    page[1500] = appointment("1500", status="x", modified=T1)
    counts = upsert_page(session, Appointment, page, run_id=2, now=T1)
    assert counts == UpsertCounts(inserted=0, updated=1, unchanged=1999)
    session.commit()
    marked = mark_missing(
        session,
        Appointment,
        practice_id="195900",
        seen_ids=[str(i) for i in range(700)],
        now=T2,
        run_id=3,
    )
    assert marked == Marked(deleted=1300)


def test_empty_page_is_a_no_op(session):
    assert upsert_page(session, Provider, [], run_id=1, now=T0) == UpsertCounts()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**provider("1"), "last_seen_at": T0}, "must not set"),
        ({**provider("1"), "nickname": "x"}, "no column"),
        ({k: v for k, v in provider("1").items() if k != "provider_id"}, "key"),
    ],
)
def test_malformed_rows_are_programming_errors(session, row, message):
    with pytest.raises((ValueError, KeyError), match=message):
        upsert_page(session, Provider, [row], run_id=1, now=T0)


def test_upserts_sharing_one_transaction_see_only_their_own_rows(session):
    # The Postgres path stages each page in a temporary table that only the commit empties:
    # a later upsert in the same transaction must not move an earlier one's rows again (here
    # it would write "Zoë" back over "Ana", or touch the row twice in one statement).
    pages = [[provider("1"), provider("2")], [provider("1", first_name="Zoë")], [provider("1")]]
    counts = [upsert_page(session, Provider, page, run_id=1, now=T0) for page in pages]
    session.commit()
    assert counts == [UpsertCounts(inserted=2), UpsertCounts(updated=1), UpsertCounts(updated=1)]
    row = session.get(Provider, ("195900", "1"))
    assert row is not None and row.first_name == "Ana"


def test_a_mapped_column_alone_changing_is_a_change(session):
    # The same record as received, mapped with other context (a department's zone behind
    # start_at, the hidden flag of a department): the row differs, so it is written.
    row = appointment("9")
    upsert_page(session, Appointment, [row], run_id=1, now=T0)
    session.commit()
    moved = {**row, "start_at": row["start_at"] + timedelta(hours=1), "timezone_name": "US/Central"}
    assert upsert_page(session, Appointment, [moved], run_id=2, now=T1).updated == 1
    session.commit()
    assert upsert_page(session, Appointment, [moved], run_id=3, now=T2).unchanged == 1


def _stored_hashes(session: Session) -> dict[str, int | None]:
    rows = session.execute(sa.select(Provider.provider_id, Provider.row_hash))
    return {pid: row_hash for pid, row_hash in rows}


def test_a_stale_row_hash_is_rewritten_once_then_left_alone(fresh_pg_url):
    from worker.db import make_engine, upgrade

    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    page = [provider(str(i)) for i in range(1, 6)]
    try:
        with Session(engine) as s:
            upsert_page(s, Provider, page, run_id=1, now=T0)
            s.commit()
            fresh = _stored_hashes(s)
            assert None not in fresh.values()
            # As an older version left them: a hash computed some other way, and none at all.
            s.execute(
                sa.text("UPDATE providers SET row_hash = row_hash + 1 WHERE provider_id = '2'")
            )
            s.execute(sa.text("UPDATE providers SET row_hash = NULL WHERE provider_id = '4'"))
            s.commit()

            before = write_counter(s)
            counts = upsert_page(s, Provider, page, run_id=2, now=T1)
            assert write_counter(s) - before == 2
            s.commit()
            assert counts == UpsertCounts(updated=2, unchanged=3)
            assert _stored_hashes(s) == fresh
            rewritten = s.get(Provider, ("195900", "2"))
            assert rewritten is not None and rewritten.last_sync_run_id == 2

            before = write_counter(s)
            counts = upsert_page(s, Provider, page, run_id=3, now=T2)
            assert write_counter(s) - before == 0
            s.commit()
            assert counts == UpsertCounts(unchanged=5)
    finally:
        engine.dispose()


def test_volatile_keys_of_raw_are_no_change(session):
    """``appointmentnotes`` (the feed sends it, the listing does not) is left out of the
    comparison: the row keeps the ``raw`` of its last write; any other difference still writes."""
    volatile = ("appointmentnotes",)
    plain = appointment("1")
    noted = {**plain, "raw": {**plain["raw"], "appointmentnotes": [{"notetext": "call back"}]}}
    assert upsert_page(session, Appointment, [plain], run_id=1, now=T0, volatile=volatile) == (
        UpsertCounts(inserted=1)
    )
    before = write_counter(session)
    for page in ([noted], [plain], [noted]):
        counts = upsert_page(session, Appointment, page, run_id=2, now=T1, volatile=volatile)
        assert counts == UpsertCounts(unchanged=1)
    assert write_counter(session) == before
    session.commit()
    assert "appointmentnotes" not in session.get(Appointment, ("195900", "1")).raw

    # Without the list the notes are a change (what the list exists to prevent) ...
    assert upsert_page(session, Appointment, [noted], run_id=3, now=T1) == UpsertCounts(updated=1)
    # ... and with it a real change is written, notes and all, as received.
    moved = {**noted, "status": "x", "raw": {**noted["raw"], "appointmentstatus": "x"}}
    counts = upsert_page(session, Appointment, [moved], run_id=4, now=T2, volatile=volatile)
    assert counts == UpsertCounts(updated=1)
    session.commit()
    stored = session.get(Appointment, ("195900", "1"))
    assert (stored.status, stored.raw["appointmentnotes"]) == ("x", [{"notetext": "call back"}])


def test_a_stored_lastmodified_in_the_future_does_not_freeze_the_row(session):
    """A record stamped far in the future (accepted up to the year 2100) must not refuse every
    later version; one stamped within FUTURE_GUARD_TOLERANCE of the write's clock still guards."""
    guard = "last_modified_at"
    future = T0 + timedelta(days=300)
    upsert_page(
        session,
        Appointment,
        [appointment("9", modified=future)],
        run_id=1,
        now=T0,
        guard_column=guard,
    )
    upsert_page(
        session, Appointment, [appointment("8", modified=T1)], run_id=1, now=T0, guard_column=guard
    )
    session.commit()
    fixed = appointment("9", status="x", modified=T1)
    counts = upsert_page(session, Appointment, [fixed], run_id=2, now=T1, guard_column=guard)
    session.commit()
    assert counts.updated == 1
    row = session.get(Appointment, ("195900", "9"))
    assert row is not None and (row.status, row.last_modified_at) == ("x", T1)
    # Stored T1, written at T0 (an hour ahead: clocks differ that much): still the newer one.
    stale = appointment("8", status="x", modified=T0)
    counts = upsert_page(session, Appointment, [stale], run_id=3, now=T0, guard_column=guard)
    session.commit()
    assert counts.unchanged == 1
