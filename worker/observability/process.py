"""A worker's ``/metrics``: Prometheus multiprocess mode, set up before the pool forks.

Each prefork pool process counts in its own files under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh,
empty directory per worker start, removed at shutdown); the main process serves ``/metrics`` on
``METRICS_PORT`` and sums every process's files, those of pool processes that already exited
included, so counters never go back when a pool process is replaced. A worker killed outright
(SIGKILL, OOM) cannot remove its directory: the next worker start on the host removes those whose
owner process is gone (``sweep_orphans``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from worker import metrics
from worker.settings import Settings

log = structlog.get_logger()
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "athena-sync-metrics-"
OWNER_FILE = "owner.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def sweep_orphans(parent: Path | None = None) -> list[Path]:
    """Remove metrics directories (ours: this user's, named ``PREFIX``…) whose owner process is
    gone; return them. One without an owner file (an older version's, or one being created this
    instant) is left alone."""
    removed = []
    for directory in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if directory.stat().st_uid != os.getuid():
                continue
            owner = int((directory / OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    if removed:
        log.info("metrics.orphans_removed", directories=len(removed))
    return removed


@dataclass
class WorkerMetrics:
    """The files and the HTTP server of one worker's metrics."""

    directory: Path
    port: int
    server: Any
    thread: threading.Thread

    def mark_dead(self, pid: int) -> None:
        """Drop the live-gauge files of an exited pool process (its counters stay summed)."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop serving, record nothing more, remove the files."""
        self.server.shutdown()
        self.server.server_close()
        metrics.install(None)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_worker_metrics(settings: Settings) -> WorkerMetrics | None:
    """In a worker's main process, before its pool forks: with ``METRICS_PORT`` set, count in
    multiprocess files and serve them on that port; without it do nothing (None)."""
    if settings.metrics_port is None:
        return None
    sweep_orphans()
    directory = Path(tempfile.mkdtemp(prefix=PREFIX))
    (directory / OWNER_FILE).write_text(str(os.getpid()))
    # prometheus_client picks its value class (in-memory or per-process files) from this variable
    # when first imported; set it, then choose again in case something imported it earlier. Pool
    # processes forked later inherit both.
    os.environ[MULTIPROC_ENV] = str(directory)
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    from worker.observability.instruments import PrometheusSink

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    sink = PrometheusSink()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    try:
        server, thread = start_http_server(settings.metrics_port, registry=registry)
    except OSError as exc:
        # A worker that cannot serve its metrics still syncs (and records nothing).
        log.error("metrics.port_unavailable", port=settings.metrics_port, error=str(exc))
        shutil.rmtree(directory, ignore_errors=True)
        return None
    metrics.install(sink)
    log.info("metrics.serving", port=settings.metrics_port)
    return WorkerMetrics(directory, settings.metrics_port, server, thread)
