"""The appointments sync task (``tasks.appointments.sync_appointments``): one practice or every
configured one, ``incremental`` or ``reconcile``."""

from __future__ import annotations

from tasks.base import SyncTask
from tasks.sync_tasks import send_practices
from worker.app import task


@task(base=SyncTask)
def sync_appointments(practice_id: str | None = None, mode: str = "incremental") -> list[str]:
    """Enqueue an appointments sync (``incremental`` or ``reconcile``) for one or every practice."""
    return send_practices(("appointments",), mode, practice_id)
