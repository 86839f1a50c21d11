"""The departments sync task (``tasks.departments.sync_departments``), for one or every practice."""

from __future__ import annotations

from tasks.base import SyncTask
from tasks.sync_tasks import send_practices
from worker.app import task


@task(base=SyncTask)
def sync_departments(practice_id: str | None = None) -> list[str]:
    """Enqueue a departments sync for one practice (default: every configured practice)."""
    return send_practices(("departments",), "incremental", practice_id)
