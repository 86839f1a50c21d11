"""End-to-end sync throughput: sandbox over loopback HTTP -> Postgres (or SQLite).

    python -m bench.sync [--appointments 100000] [--departments 10] [--database postgres|sqlite]
                         [--page-limit 1000] [--pg-admin-url URL]

Starts the built-in sandbox in a child process (so its CPU is not counted here), creates a
throwaway database, runs a full sync (reference data + appointments), then a second identical
sync (nothing changed: measures the idempotent path), and prints records/s, API calls, token
mints and this process's peak memory for each.
"""

from __future__ import annotations

import argparse
import resource
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import requests

from bench.pg import DEFAULT_ADMIN_URL, fresh_database, sqlalchemy_url
from bench.sandbox import ANCHOR, CLIENT_ID, CLIENT_SECRET, PRACTICE, DatasetSpec, SandboxProcess
from sandbox import SandboxConfig
from sandbox.clock import dst_days
from worker.db import upgrade
from worker.runtime import open_runtime
from worker.settings import settings_from_env
from worker.sync.plan import SyncRequest, expand_resources, run_request


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[str]:
    """A throwaway database's SQLAlchemy URL: a SQLite file, or a fresh Postgres database."""
    if args.database == "sqlite":
        yield f"sqlite:////tmp/athena-sync-bench-{uuid.uuid4().hex[:8]}.db"
        return
    with fresh_database(args.pg_admin_url) as url:
        yield sqlalchemy_url(url)


def _served_window(args: argparse.Namespace) -> tuple[date, date]:
    """The sandbox's appointment days plus the DST Sundays it adds (no truth download: that
    would dominate this process's peak memory)."""
    config = SandboxConfig(anchor_date=ANCHOR, days=args.days)
    days = (config.first_day, config.last_day, *dst_days(ANCHOR))
    return min(days), max(days)


def _run(label: str, settings: Any, url: str, window: tuple[date, date], mode: str) -> None:
    before = requests.get(f"{url}/_sandbox/stats", timeout=5).json()
    runtime = open_runtime(settings)
    request = SyncRequest(
        resources=expand_resources(["all"]),
        practices=(PRACTICE,),
        mode=mode,
        start=window[0],
        end=window[1],
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        results = run_request(runtime.context(), request)
    finally:
        runtime.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    after = requests.get(f"{url}/_sandbox/stats", timeout=5).json()
    fetched = sum(r.counts.fetched for r in results)
    written = sum(r.counts.inserted + r.counts.updated for r in results)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    statuses = sorted({r.status for r in results})
    print(
        f"{label:<22} records={fetched:>7}  written={written:>7}  seconds={elapsed:7.2f}  "
        f"records/s={fetched / elapsed:9.0f}  cpu_s={cpu:6.2f}  "
        f"cpu_s_per_100k={cpu * 100_000 / max(fetched, 1):5.2f}  "
        f"api_calls={after['total'] - before['total']:>5}  "
        f"token_mints={after['token_mints'] - before['token_mints']}  peak_rss_mb={peak_mb:6.0f}  "
        f"units={len(results)} status={','.join(statuses)}"
    )


def main() -> None:
    """Run the benchmark and print one line per sync."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--departments", type=int, default=10)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--page-limit", type=int, default=1000)
    parser.add_argument("--pg-admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    server = SandboxProcess(DatasetSpec(args.appointments, args.departments, args.days))
    try:
        with _database(args) as database_url:
            upgrade(database_url)
            settings = settings_from_env(
                {
                    "DATABASE_URL": database_url,
                    "ATHENA_BASE_URL": server.url,
                    "ATHENA_CLIENT_ID": CLIENT_ID,
                    "ATHENA_CLIENT_SECRET": CLIENT_SECRET,
                    "ATHENA_RATE_LIMIT_RPS": "10000",
                    "ATHENA_RATE_LIMIT_BURST": "10000",
                    "ATHENA_PAGE_LIMIT": str(args.page_limit),
                    "LOG_LEVEL": "WARNING",
                }
            )
            from worker.logging import configure_logging

            configure_logging(settings)
            window = _served_window(args)
            print(
                f"sandbox: {args.appointments} appointments, {args.departments} departments; "
                f"database: {args.database}; page limit {args.page_limit}"
            )
            _run("first sync", settings, server.url, window, "incremental")
            _run("re-sync (reconcile)", settings, server.url, window, "reconcile")
    finally:
        server.close()


if __name__ == "__main__":
    main()
