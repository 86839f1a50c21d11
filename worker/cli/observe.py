"""`athena-sync freshness`, `athena-sync metrics serve` and `athena-sync health beat`: what an
operator (or a container runtime, or Prometheus) asks a deployment, answered from the database
and Redis alone."""

from __future__ import annotations

import json
import sys

import click
from redis import Redis
from rich.table import Table

from worker.cli.common import load, runtime_for
from worker.cli.output import console
from worker.observability.heartbeat import DEFAULT_MAX_AGE_SECONDS, beat_health
from worker.settings import DEFAULT_METRICS_PORT
from worker.store.freshness import Freshness, Thresholds, exit_code
from worker.store.freshness_query import freshness as read_freshness
from worker.store.runs import utcnow

STATE_STYLE = {"ok": "green", "warn": "yellow", "error": "red"}


@click.command()
@click.option("--practice", "practices", multiple=True, help="Practice id (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def freshness(practices: tuple[str, ...], as_json: bool) -> None:
    """How fresh each practice x resource (x department) is; exit 0 ok, 1 warn, 2 error."""
    settings = load()
    chosen = practices or settings.athena_practice_ids
    runtime = runtime_for(settings, with_client=False)
    try:
        with runtime.sessions() as session:
            rows = read_freshness(
                session,
                practices=chosen,
                thresholds=Thresholds.from_settings(settings),
                now=utcnow(),
            )
    finally:
        runtime.close()
    code = exit_code(rows) if rows else 2
    if as_json:
        click.echo(json.dumps({"rows": [r.as_json() for r in rows], "exit_code": code}, indent=2))
    else:
        console.print(_table(rows))
        if not rows:
            console.print("no practice configured (ATHENA_PRACTICE_IDS) or synced yet")
    sys.exit(code)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _table(rows: list[Freshness]) -> Table:
    table = Table(title="freshness")
    for name in ("practice", "resource", "dept", "source", "last read", "age", "watermark"):
        table.add_column(name)
    table.add_column("letters", justify="right")
    table.add_column("state")
    for r in rows:
        style = STATE_STYLE[r.state]
        table.add_row(
            r.practice_id,
            r.resource,
            r.department_id or "",
            r.source or "",
            r.last_read_at.strftime("%Y-%m-%d %H:%M:%S") if r.last_read_at else "never",
            _age(r.age_seconds),
            r.watermark.strftime("%Y-%m-%d %H:%M:%S") if r.watermark else "",
            str(r.open_letters),
            f"[{style}]{r.state}[/]",
        )
    return table


@click.group()
def metrics() -> None:
    """Prometheus metrics read from the database."""


@metrics.command("serve")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Default: METRICS_PORT, else 9808."
)
def serve(port: int | None) -> None:
    """Serve /metrics with the database gauges (freshness, last success, open dead letters);
    run one per deployment, beside the workers' own /metrics."""
    from prometheus_client import CollectorRegistry, start_http_server

    from worker.observability.database import DatabaseCollector

    settings = load()
    chosen = port or settings.metrics_port or DEFAULT_METRICS_PORT
    runtime = runtime_for(settings, with_client=False)
    registry = CollectorRegistry()
    registry.register(
        DatabaseCollector(
            runtime.sessions,
            practices=settings.athena_practice_ids,
            thresholds=Thresholds.from_settings(settings),
        )
    )
    server, thread = start_http_server(chosen, registry=registry)
    console.print(f"serving /metrics on port {chosen}", highlight=False)
    try:
        thread.join()
    finally:
        server.shutdown()
        runtime.close()


@click.group()
def health() -> None:
    """Health checks for container runtimes."""


@health.command("beat")
@click.option(
    "--max-age",
    type=click.FloatRange(min=0, min_open=True),
    default=float(DEFAULT_MAX_AGE_SECONDS),
    show_default=True,
    metavar="SECONDS",
    help="Oldest heartbeat still healthy.",
)
def beat(max_age: float) -> None:
    """Exit 0 when beat stamped its heartbeat in Redis within --max-age seconds, else 1."""
    settings = load()
    redis = Redis.from_url(settings.require_redis_url())
    try:
        found = beat_health(redis, settings.redis_key_prefix, max_age_seconds=max_age)
    finally:
        redis.close()
    if found.age_seconds is None:
        click.echo("beat: no heartbeat in Redis (beat not running, or another REDIS_KEY_PREFIX)")
    else:
        verdict = "healthy" if found.healthy else "stale"
        click.echo(f"beat: {verdict}, last heartbeat {found.age_seconds:.1f} s ago")
    sys.exit(0 if found.healthy else 1)
