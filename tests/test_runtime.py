"""What opening a runtime does to the process: the collector tuned once (issue 16)."""

from __future__ import annotations

import gc

from worker.runtime import GC_YOUNG_THRESHOLD, open_runtime
from worker.settings import settings_from_env


def test_opening_a_runtime_freezes_the_startup_heap_and_collects_young_objects_less_often(
    tmp_path,
) -> None:
    settings = settings_from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"})
    runtime = open_runtime(settings, with_client=False)
    try:
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        since = [[n] for n in range(10_000)]  # tracked: a second freeze would take them
        open_runtime(settings, with_client=False).close()
        assert gc.get_freeze_count() - frozen < len(since), "once per process, not per runtime"
    finally:
        runtime.close()
