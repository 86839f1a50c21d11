"""`athena-sync worker` and `athena-sync beat`: exactly the Procfile lines, exec'd.

The process becomes ``celery`` itself (same pid), so signals from a supervisor or container
runtime reach Celery directly. Arguments after the options are passed on to celery.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from worker.cli.common import load

DEFAULT_CONCURRENCY = 4
CELERY = ("celery", "-A", "worker.app")
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def worker_argv(concurrency: int = DEFAULT_CONCURRENCY, extra: Sequence[str] = ()) -> list[str]:
    """The worker command line (the Procfile's ``worker:`` line with default options)."""
    return [*CELERY, "worker", "--loglevel=INFO", f"--concurrency={concurrency}", *extra]


def beat_argv(extra: Sequence[str] = ()) -> list[str]:
    """The beat command line (the Procfile's ``beat:`` line)."""
    return [*CELERY, "beat", "--loglevel=INFO", *extra]


def exec_celery(argv: Sequence[str]) -> None:
    """Check the settings (REDIS_URL), then replace this process with ``celery argv[1:]``."""
    load().require_redis_url()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "celery", *argv[1:]])


@click.command(context_settings=PASS_THROUGH)
@click.option(
    "-c",
    "--concurrency",
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1),
    help="Pool processes in this worker (each syncs one unit at a time).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency: int, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker: `celery -A worker.app worker --loglevel=INFO --concurrency=N`."""
    exec_celery(worker_argv(concurrency, celery_args))


@click.command(context_settings=PASS_THROUGH)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run Celery beat (one per deployment): `celery -A worker.app beat --loglevel=INFO`."""
    exec_celery(beat_argv(celery_args))
