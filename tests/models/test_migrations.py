"""The migrations produce exactly the models' schema, on Postgres and on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session

import models
from sandbox import SandboxConfig
from sandbox.store import PracticeStore
from worker.db import current_revision, head_revision, make_engine, upgrade
from worker.resources import all_resources
from worker.store.upsert import UpsertCounts, upsert_page


def _diff(engine: sa.engine.Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, models.Base.metadata))


def test_upgrade_to_head_matches_models(db_url):
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) is None
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
        assert _diff(engine) == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent(engine):
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert set(sa.inspect(engine).get_table_names()) >= {
        "providers",
        "departments",
        "appointment_types",
        "appointments",
        "sync_runs",
        "sync_state",
        "dead_letters",
    }


def test_an_empty_database_differs_from_the_models(tmp_path):
    # Guards the test above against comparing nothing with nothing.
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert len(_diff(engine)) >= 7
    finally:
        engine.dispose()


def test_downgrade_removes_everything(engine):
    from alembic import command

    from worker.db import alembic_config

    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}


def test_sync_runs_take_the_changed_mode_and_nothing_else(engine):
    upgrade(engine)
    insert = (
        "INSERT INTO sync_runs (resource, practice_id, mode, status, started_at) "
        "VALUES ('appointments', '195900', :mode, 'succeeded', CURRENT_TIMESTAMP)"
    )
    with engine.begin() as connection:
        connection.execute(sa.text(insert), {"mode": "changed"})
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(insert), {"mode": "sideways"})
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("a mode outside the CHECK was accepted")
    with engine.connect() as connection:
        modes = connection.execute(sa.text("SELECT mode FROM sync_runs")).scalars().all()
    assert modes == ["changed"]


def _sandbox_pages() -> dict[Any, list[dict[str, Any]]]:
    """Every resource's rows as the mappers make them from the sandbox's records."""
    truth = PracticeStore("195900", SandboxConfig(seed=5, appointments=200)).truth()
    zones = {str(d["departmentid"]): d["timezonename"] for d in truth["departments"]}
    pages = {}
    for resource in all_resources().values():
        context: dict[str, Any] = {"timezones": zones, "hidden": False}
        records = truth[resource.collection]
        pages[resource] = [resource.to_row(r, practice_id="195900", **context) for r in records]
    return pages


def test_the_backfilled_row_hash_is_the_write_paths(fresh_pg_url):
    # Rows stored before 0005 get their hash from the migration, in SQL: it must be the very
    # value the write path computes, or the first sync after the upgrade rewrites every row.
    from alembic import command

    from worker.db import alembic_config

    engine = make_engine(fresh_pg_url)
    upgrade(engine)
    pages, now = _sandbox_pages(), datetime(2026, 11, 29, tzinfo=UTC)
    try:
        with Session(engine) as session:
            for resource, rows in pages.items():
                upsert_page(session, resource.model, rows, run_id=1, now=now)
            session.commit()
        written = _hashes(engine)
        assert all(None not in hashes for hashes in written.values())
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")  # the schema an older version wrote to
            command.upgrade(config, "head")
        assert _hashes(engine) == written
        with Session(engine) as session:
            for resource, rows in pages.items():
                counts = upsert_page(session, resource.model, rows, run_id=2, now=now)
                assert counts == UpsertCounts(unchanged=len(rows)), resource.name
    finally:
        engine.dispose()


def _hashes(engine: sa.engine.Engine) -> dict[str, list[Any]]:
    with engine.connect() as connection:
        return {
            model.__tablename__: sorted(
                connection.execute(sa.select(model.__table__.c.row_hash)).scalars()
            )
            for model in models.RESOURCE_MODELS
        }


def test_0006_rehashes_rows_holding_volatile_fields_as_the_write_path(fresh_pg_url):
    # Appointments the feed wrote (``raw`` holding ``appointmentnotes``) before 0006 were hashed
    # with the notes; after the upgrade their hash must be the write path's, which leaves the
    # notes out, so the next read of them (by the feed or by the listing) writes nothing.
    from alembic import command

    from worker.db import alembic_config
    from worker.resources import get_resource

    resource = get_resource("appointments")
    rows = _sandbox_pages()[resource]
    noted = [
        {**row, "raw": {**row["raw"], "appointmentnotes": [{"notetext": f"note {i}"}]}}
        if i % 2
        else row
        for i, row in enumerate(rows)
    ]
    now = datetime(2026, 11, 30, tzinfo=UTC)
    engine = make_engine(fresh_pg_url)

    def migrate(revision: str, step: Any) -> None:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            step(config, revision)

    def upsert(page: list[dict[str, Any]], volatile: tuple[str, ...]) -> UpsertCounts:
        with Session(engine) as session, session.begin():
            return upsert_page(session, resource.model, page, run_id=1, now=now, volatile=volatile)

    try:
        upgrade(engine, "0005")
        assert upsert(noted, ()) == UpsertCounts(inserted=len(rows))  # as 0005's write path
        before = _hashes(engine)["appointments"]
        migrate("0006", command.upgrade)
        after = _hashes(engine)["appointments"]
        assert len(set(before) - set(after)) == len(rows) // 2  # the noted rows, and only they
        assert upsert(noted, resource.volatile_fields) == UpsertCounts(unchanged=len(rows))
        assert upsert(rows, resource.volatile_fields) == UpsertCounts(unchanged=len(rows))
        migrate("0005", command.downgrade)
        assert _hashes(engine)["appointments"] == before
        assert upsert(noted, ()) == UpsertCounts(unchanged=len(rows))
    finally:
        engine.dispose()
