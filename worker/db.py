"""Engines, sessions and schema upgrades. Nothing connects at import time.

``make_engine`` accepts the URLs people actually paste (``postgres://``, ``postgresql://``) and
always drives Postgres through psycopg 3. SQLite (the zero-configuration default) gets WAL, foreign
keys and a busy timeout on every connection. ``upgrade`` runs the Alembic migrations shipped inside
the ``models`` package; no ``alembic.ini`` is needed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# A pooled connection idle at least this long is pinged before it is handed out; one back in
# the pool for less (the page written a moment ago) is not: a sync checks a connection out once
# per page, and a ping per page was a round trip per page.
PING_AFTER_IDLE_SECONDS = 2.0
_CHECKED_IN = "athena_checked_in"


def normalize_url(url: str) -> str:
    """Rewrite ``postgres://`` and ``postgresql://`` to the psycopg 3 driver; leave others alone."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _json_dumps(value: Any) -> str:
    # Sorted keys: the same record in a different key order is the same JSON text on SQLite,
    # so the upsert's "did anything change" test does not see reordering as a change.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")  # a no-op ("memory") for in-memory databases
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _stamp(_dbapi_connection: Any, record: Any) -> None:
    record.info[_CHECKED_IN] = time.monotonic()


def _ping_when_idle(engine: Engine) -> Any:
    """A checkout hook: SQLAlchemy's pre-ping, for connections idle ``PING_AFTER_IDLE_SECONDS``
    or more. A dead connection is dropped and another taken (``DisconnectionError``)."""

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN)
        if checked_in is not None and time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError("the pooled connection is gone") from exc
        if not alive:
            raise sa.exc.DisconnectionError("the pooled connection is gone")

    return checkout


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an Engine for ``url`` (Postgres via psycopg 3, or SQLite tuned for concurrency).

    Pooled connections are checked before use unless they were in use a moment ago (see
    ``PING_AFTER_IDLE_SECONDS``); ``pool_pre_ping=True`` in ``kwargs`` pings every checkout."""
    url = normalize_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    options.update(kwargs)
    engine = sa.create_engine(url, **options)
    if not options.get("pool_pre_ping"):
        sa.event.listen(engine.pool, "connect", _stamp)
        sa.event.listen(engine.pool, "checkin", _stamp)
        sa.event.listen(engine.pool, "checkout", _ping_when_idle(engine))
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker bound to ``engine``; objects stay usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Any:
    """An in-memory Alembic Config pointing at the migrations shipped in ``models``."""
    from alembic.config import Config

    import models.migrations

    config = Config()
    # A filesystem path rather than "models:migrations": it also works from an editable install.
    config.set_main_option("script_location", str(Path(models.migrations.__file__).parent))
    if url is not None:
        # ConfigParser interpolation treats '%' specially (URL-encoded passwords).
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the newest)."""
    from alembic import command

    owned = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str | None:
    """The newest revision the shipped migrations define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def known_revision(revision: str) -> bool:
    """Whether the shipped migrations define ``revision`` (a newer release's would not)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at, or None if it was never migrated."""
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
