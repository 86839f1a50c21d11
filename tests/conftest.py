"""Shared fixtures: a fresh Postgres database per test session, a Redis key namespace per test.

Services are never skipped: if Postgres or Redis is down the fixture fails with what to start.
Set TEST_POSTGRES_URL / TEST_REDIS_URL to point elsewhere.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

START_POSTGRES = (
    "PostgreSQL is not reachable at {url}: start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
    "or set TEST_POSTGRES_URL. ({error})"
)
START_REDIS = (
    "Redis is not reachable at {url}: start it with "
    '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no` '
    "or set TEST_REDIS_URL. ({error})"
)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """The admin URL of a reachable Postgres server (fails loudly if down)."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        pytest.fail(START_POSTGRES.format(url=PG_ADMIN_URL, error=exc), pytrace=False)
    finally:
        engine.dispose()
    return PG_ADMIN_URL


def create_database(admin_url: str, name: str) -> str:
    """Create an empty database and return its URL."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop a database, disconnecting any leftover sessions."""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def fresh_pg_url(pg_server_url: str) -> Iterator[str]:
    """A brand-new, empty Postgres database for one test; dropped afterwards."""
    name = f"athena_sync_test_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_server_url, name)
    try:
        yield url
    finally:
        drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis server (fails loudly if down)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(START_REDIS.format(url=REDIS_URL, error=exc), pytrace=False)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix for one test; its keys are deleted afterwards."""
    prefix = f"athena-sync-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
