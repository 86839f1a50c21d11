"""The migrations produce exactly the models' schema, on Postgres and on SQLite."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import models
from worker.db import current_revision, head_revision, make_engine, upgrade


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
