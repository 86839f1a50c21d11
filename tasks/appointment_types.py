"""The appointment-types sync task (``tasks.appointment_types.sync_appointment_types``)."""

from __future__ import annotations

from tasks.base import SyncTask
from tasks.sync_tasks import send_practices
from worker.app import task


@task(base=SyncTask)
def sync_appointment_types(practice_id: str | None = None) -> list[str]:
    """Enqueue an appointment-types sync for one practice (default: every configured practice)."""
    return send_practices(("appointment-types",), "incremental", practice_id)
