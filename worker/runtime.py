"""The one place that builds what a process needs to sync: engine, sessions, the API client,
Redis and the unit leases (a CLI invocation, a Celery pool process, a benchmark)."""

from __future__ import annotations

import gc
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.athena.client import AthenaClient, build_client
from worker.db import make_engine, session_factory
from worker.leases import Leases
from worker.settings import Settings
from worker.sync.job import ProgressHook, SyncContext
from worker.sync.leased import LeaseWait, leased_runner
from worker.sync.plan import UnitRunner
from worker.sync.runner import run_unit


@dataclass
class Runtime:
    """Long-lived resources of one process (a CLI invocation or a Celery worker)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    client: AthenaClient | None = None
    redis: Redis | None = None
    leases: Leases | None = None
    """Unit leases in Redis (None without ``REDIS_URL``: a CLI running alone)."""

    def context(
        self,
        *,
        run_group: str | None = None,
        task_id: str | None = None,
        task_name: str | None = None,
        on_progress: ProgressHook | None = None,
    ) -> SyncContext:
        """A SyncContext for one invocation (``run_group`` ties its runs together)."""
        if self.client is None:
            raise RuntimeError("this runtime was opened without an API client")
        return SyncContext(
            client=self.client,
            sessions=self.sessions,
            settings=self.settings,
            run_group=run_group or uuid.uuid4().hex,
            task_id=task_id,
            task_name=task_name,
            on_progress=on_progress,
        )

    def runner(self, *, wait: LeaseWait | None = None) -> UnitRunner:
        """How units run here: under their lease when there is Redis (so no two triggers
        overlap), else directly."""
        if self.leases is None:
            return run_unit
        return leased_runner(self.leases, wait=wait)

    def close(self) -> None:
        """Release connections."""
        if self.client is not None:
            self.client.close()
        if self.redis is not None:
            self.redis.close()
        self.engine.dispose()


# Young containers the cyclic collector lets accumulate (net of those freed) before it runs: a
# page in flight is a few thousand (the records and their rows, freed with the page), so the
# default 700 made it scan the pages in hand several times each; cycles still get collected.
GC_YOUNG_THRESHOLD = 20_000


def _tune_collector() -> None:
    """Once per process: what exists when its first runtime opens (modules, metadata, settings)
    lives as long as the process, so it is frozen out of the collector's full scans, which
    otherwise walk it again and again (~0.1 CPU-s per 100k records synced); and young objects
    are collected less often (see above)."""
    if _TUNED.is_set():
        return
    _TUNED.set()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), middle, old)


_TUNED = threading.Event()


def open_runtime(
    settings: Settings, *, redis: Any = None, with_client: bool = True, require_redis: bool = False
) -> Runtime:
    """Engine + sessions + a client sharing token and budget through Redis when configured, and
    the unit leases there. ``require_redis``: a missing ``REDIS_URL`` is a SettingsError."""
    _tune_collector()
    url = settings.require_redis_url() if require_redis else settings.redis_url
    if redis is None and url:
        redis = Redis.from_url(url)
    client = build_client(settings, redis=redis) if with_client else None
    engine = make_engine(settings.database_url)
    leases = None
    if redis is not None:
        leases = Leases(redis, prefix=settings.redis_key_prefix, ttl=settings.lease_seconds)
    return Runtime(settings, engine, session_factory(engine), client, redis, leases)
