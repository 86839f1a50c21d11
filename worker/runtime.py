"""Building what a sync needs from Settings: engine, sessions and the API client."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from worker.athena.client import AthenaClient, build_client
from worker.db import make_engine, session_factory
from worker.settings import Settings
from worker.sync.job import ProgressHook, SyncContext


@dataclass
class Runtime:
    """Long-lived resources of one process (a CLI invocation or a Celery worker)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    client: AthenaClient | None = None

    def context(
        self,
        *,
        run_group: str | None = None,
        task_id: str | None = None,
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
            on_progress=on_progress,
        )

    def close(self) -> None:
        """Release connections."""
        if self.client is not None:
            self.client.close()
        self.engine.dispose()


def open_runtime(settings: Settings, *, redis: Any = None, with_client: bool = True) -> Runtime:
    """Engine + sessions + a client sharing token and budget through Redis when configured."""
    client = build_client(settings, redis=redis) if with_client else None
    engine = make_engine(settings.database_url)
    return Runtime(settings, engine, session_factory(engine), client)
