"""The athena-sync contender: the real code path (``open_runtime`` + ``run_request``).

The first run is the normal sync (``incremental``: nothing stored yet, so everything in the
window is read); the re-run is a ``reconcile`` of the same window, which re-reads every
appointment and must write nothing when nothing changed. The schema is migrated by the harness
before the first run (a deploy step, not part of a sync).
"""

from __future__ import annotations

from collections.abc import Callable

from bench.child import RunSpec
from bench.pg import sqlalchemy_url
from bench.sandbox import CLIENT_ID, CLIENT_SECRET, PRACTICE
from worker.logging import configure_logging
from worker.runtime import open_runtime
from worker.settings import Settings, settings_from_env
from worker.sync.plan import SyncRequest, expand_resources, run_request


def settings_for(spec: RunSpec, **extra: str) -> Settings:
    """Settings of a benchmark run: no request budget to speak of, warnings only; appointments
    read one department per request, as the raw loader and dlt read them (the multi-department
    listing is measured by ``python -m bench.freshness``)."""
    return settings_from_env(
        {
            "DATABASE_URL": sqlalchemy_url(spec.database_url),
            "ATHENA_BASE_URL": spec.base_url,
            "ATHENA_CLIENT_ID": CLIENT_ID,
            "ATHENA_CLIENT_SECRET": CLIENT_SECRET,
            "ATHENA_RATE_LIMIT_RPS": "100000",
            "ATHENA_RATE_LIMIT_BURST": "100000",
            "ATHENA_PAGE_LIMIT": str(spec.page_limit),
            "LOG_LEVEL": "WARNING",
            "SYNC_MULTI_DEPARTMENT": "false",
            **extra,
        }
    )


def loader(spec: RunSpec) -> Callable[[], int]:
    """A full sync (or, on the re-run, a reconcile) of every resource over the window."""
    settings = settings_for(spec)
    configure_logging(settings)
    request = SyncRequest(
        resources=expand_resources(["all"]),
        practices=(PRACTICE,),
        mode="reconcile" if spec.rerun else "incremental",
        start=spec.start,
        end=spec.end,
    )

    def load() -> int:
        runtime = open_runtime(settings)
        try:
            results = run_request(runtime.context(), request)
        finally:
            runtime.close()
        failed = [f"{r.unit.key}: {r.status} {r.error}" for r in results if r.status != "succeeded"]
        if failed:
            raise RuntimeError("sync units did not succeed: " + "; ".join(failed[:5]))
        return sum(r.counts.fetched for r in results)

    return load
