"""The providers sync task (``tasks.providers.sync_providers``), for one or every practice."""

from __future__ import annotations

from tasks.base import SyncTask
from tasks.sync_tasks import send_practices
from worker.app import task


@task(base=SyncTask)
def sync_providers(practice_id: str | None = None) -> list[str]:
    """Enqueue a providers sync for one practice (default: every configured practice)."""
    return send_practices(("providers",), "incremental", practice_id)
