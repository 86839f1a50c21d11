"""A beat scheduler for tests: the app's real ``beat_schedule``, every entry due at start-up.

Production intervals are minutes to hours; a test cannot wait for the first tick, so this
in-memory scheduler backdates each entry's last run. Everything else is stock ``celery beat``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from celery.beat import Scheduler


class DueNowScheduler(Scheduler):  # type: ignore[misc]
    """``celery.beat.Scheduler`` whose entries last ran long ago."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        for entry in self.schedule.values():
            entry.last_run_at = datetime(2000, 1, 1, tzinfo=UTC)
