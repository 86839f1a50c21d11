"""`athena-sync sandbox ...`: the built-in athenahealth API."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import click
import requests

if TYPE_CHECKING:  # the sandbox package is imported only when a sandbox verb runs
    from sandbox.config import FaultConfig

DEFAULT_URL = "http://127.0.0.1:8765"
URL_OPTION = click.option(
    "--url", default=DEFAULT_URL, show_default=True, help="Base URL of a running sandbox."
)


def _fault_options(command: Any) -> Any:
    """The fault switches shared by `serve` and `faults`."""
    unit, share, count = click.FloatRange(0, 1), click.FloatRange(0, 1), click.IntRange(0)
    options = [
        ("--error-rate", None, unit, "Probability of a 5xx answer."),
        ("--html-502-share", None, share, "Share of 5xx that are HTML 502s [0.4]."),
        ("--rate-429", None, unit, "Probability of a 429 answer."),
        ("--retry-after-share", None, share, "Share of 429s with Retry-After [0.5]."),
        ("--retry-after-seconds", None, count, "Retry-After value, seconds [1]."),
        ("--rps-limit", None, click.FloatRange(min=0, min_open=True), "Requests/s per practice."),
        ("--legacy-throttle-rate", None, unit, "Probability of a 403 Developer Over Qps."),
        ("--envelope-error-rate", None, unit, "Probability of a 200 that is not the listing."),
        ("--fault-token-ttl", "token_ttl_seconds", click.IntRange(1), "Token lifetime, seconds."),
        ("--latency-ms", None, count, "Delay before every API answer."),
        ("--malformed-appointments", None, count, "Malformed appointment rows per practice."),
        ("--fault-seed", "seed", click.INT, "Seed of the fault sequence [0]."),
    ]
    for flag, name, kind, text in reversed(options):
        decls = (flag, name) if name else (flag,)
        command = click.option(*decls, type=kind, help=text)(command)
    first_only = click.option(
        "--multi-department-first-only",
        is_flag=True,
        default=None,
        help="/appointments/booked/multipledepartment answers only the first departmentid.",
    )
    return first_only(command)


def _faults(values: dict[str, Any]) -> FaultConfig:
    from sandbox.config import ConfigError, FaultConfig

    chosen = {name: value for name, value in values.items() if value is not None}
    try:
        return FaultConfig(**chosen)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _anchor(value: str | None) -> dt.date | None:
    if value is None:
        return None
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise click.BadParameter(
        f"{value!r} is not MM/DD/YYYY or YYYY-MM-DD", param_hint="--anchor-date"
    )


def _ids(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


@click.group()
def sandbox() -> None:
    """Serve and steer the built-in athenahealth sandbox."""


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", default=1, show_default=True, type=int, help="Seed of all generated data.")
@click.option(
    "--practices", default="195900", show_default=True, help="Served practice ids, comma-separated."
)
@click.option(
    "--forbidden-practices",
    default="1128700",
    show_default=True,
    help="Practices that answer 401 Incorrect permissions.",
)
@click.option(
    "--forbidden-endpoints",
    default="",
    help="PRACTICEID:/path entries, comma-separated, that answer 403 (e.g. "
    "195900:/appointmenttypes).",
)
@click.option(
    "--unserved-endpoints",
    default="",
    help="PRACTICEID:/path entries, comma-separated, that answer 404 Unknown API path (e.g. "
    "195900:/appointments/booked/multipledepartment).",
)
@click.option(
    "--subscription-activation-seconds",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds after a changed-data subscription is requested before its feed is readable "
    "(403 until then; preview takes 10-15 minutes).",
)
@click.option(
    "--processed-retention-seconds",
    default=None,
    type=click.FloatRange(0),
    help="Seconds (sandbox clock) a change the feed marked processed can be read again with "
    "showprocessedstartdatetime/enddatetime [default: for ever].",
)
@click.option(
    "--empty-practices",
    default="",
    help="Practices that exist but hold no data (no departments, providers or appointments).",
)
@click.option(
    "--feed-appointment-notes",
    is_flag=True,
    help="Changed-data feed records carry appointmentnotes (/appointments/booked never does).",
)
@click.option("--departments", default=6, show_default=True, type=click.IntRange(1))
@click.option("--providers", default=12, show_default=True, type=click.IntRange(1))
@click.option("--appointment-types", default=20, show_default=True, type=click.IntRange(1))
@click.option(
    "--appointments",
    default=2000,
    show_default=True,
    type=click.IntRange(0),
    help="Appointments per practice.",
)
@click.option(
    "--days",
    default=60,
    show_default=True,
    type=click.IntRange(1),
    help="Days the appointments span.",
)
@click.option(
    "--anchor-date",
    help="Day the range is built around (a third before, the rest after) [today, UTC].",
)
@click.option(
    "--token-ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(1),
    help="expires_in of tokens, seconds.",
)
@click.option("--token-mints-per-minute", default=5, show_default=True, type=click.IntRange(1))
@click.option("--quiet", is_flag=True, help="Do not print one line per request.")
@_fault_options
def serve(
    host: str,
    port: int,
    seed: int,
    practices: str,
    forbidden_practices: str,
    forbidden_endpoints: str,
    unserved_endpoints: str,
    subscription_activation_seconds: float,
    processed_retention_seconds: float | None,
    empty_practices: str,
    feed_appointment_notes: bool,
    departments: int,
    providers: int,
    appointment_types: int,
    appointments: int,
    days: int,
    anchor_date: str | None,
    token_ttl: int,
    token_mints_per_minute: int,
    quiet: bool,
    **faults: Any,
) -> None:
    """Serve the sandbox until interrupted."""
    from sandbox.config import ConfigError, SandboxConfig
    from sandbox.server import SandboxServer

    anchor = _anchor(anchor_date)
    extra: dict[str, Any] = {"anchor_date": anchor} if anchor else {}
    try:
        config = SandboxConfig(
            seed=seed,
            practices=_ids(practices),
            forbidden_practices=_ids(forbidden_practices),
            empty_practices=_ids(empty_practices),
            forbidden_endpoints=_ids(forbidden_endpoints),
            unserved_endpoints=_ids(unserved_endpoints),
            subscription_activation_seconds=subscription_activation_seconds,
            processed_retention_seconds=processed_retention_seconds,
            feed_appointment_notes=feed_appointment_notes,
            departments=departments,
            providers=providers,
            appointment_types=appointment_types,
            appointments=appointments,
            days=days,
            token_ttl_seconds=token_ttl,
            token_mints_per_minute=token_mints_per_minute,
            faults=_faults(faults),
            **extra,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    server = SandboxServer(config, host=host, port=port, on_request=None if quiet else _echo)
    click.echo(
        f"athena-sync sandbox on http://{host}:{port}  practices={','.join(config.practices)} "
        f"seed={seed} days={config.first_day:%m/%d/%Y}-{config.last_day:%m/%d/%Y} "
        f"client_id={config.client_id} (Ctrl-C to stop)",
        err=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("sandbox stopped", err=True)


def _echo(method: str, path: str, status: int, seconds: float) -> None:
    click.echo(f"{method} {path} {status} {seconds * 1000:.1f}ms", err=True)


def _call(method: str, url: str, route: str, **kwargs: Any) -> Any:
    try:
        response = requests.request(
            method, f"{url.rstrip('/')}/_sandbox/{route}", timeout=30, **kwargs
        )
    except requests.RequestException as exc:
        raise click.ClickException(
            f"sandbox not reachable at {url}: {exc.__class__.__name__}"
        ) from None
    payload = response.json()
    if response.status_code != 200:
        raise click.ClickException(f"{response.status_code}: {payload.get('error')}")
    return payload


def _print(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


@sandbox.command()
@URL_OPTION
@click.option("--practice", "practiceid", help="Practice id [the first served].")
@click.option("--cancel", default=0, type=click.IntRange(0))
@click.option("--modify", default=0, type=click.IntRange(0))
@click.option("--delete", default=0, type=click.IntRange(0))
@click.option("--add", default=0, type=click.IntRange(0))
@click.option("--checkin", default=0, type=click.IntRange(0), help="Check in past visits.")
@click.option("--checkout", default=0, type=click.IntRange(0), help="Check out past visits.")
@click.option("--cancel-past", default=0, type=click.IntRange(0), help="Cancel past visits.")
@click.option(
    "--past-days",
    default=14,
    show_default=True,
    type=click.IntRange(0),
    help="Past visits are at least this many days before the anchor date.",
)
@click.option("--seed", type=int, help="Seed of this mutation (default: the next in sequence).")
def mutate(url: str, practiceid: str | None, seed: int | None, **counts: int) -> None:
    """Cancel, modify, delete and add appointments, check in, check out or cancel past visits;
    print what changed."""
    body: dict[str, Any] = dict(counts)
    if practiceid:
        body["practiceid"] = practiceid
    if seed is not None:
        body["seed"] = seed
    _print(_call("POST", url, "mutate", json=body))


@sandbox.command()
@URL_OPTION
@click.option("--reset", is_flag=True, help="Zero the counters after printing them.")
def stats(url: str, reset: bool) -> None:
    """Print request counts by path template and status, per practice, and token mints."""
    _print(_call("GET", url, "stats"))
    if reset:
        _call("POST", url, "stats/reset")


@sandbox.command()
@URL_OPTION
@click.option("--practice", "practiceid", help="Practice id [the first served].")
@click.option("--summary", is_flag=True, help="Print counts instead of the records.")
def truth(url: str, practiceid: str | None, summary: bool) -> None:
    """Print the full ground truth of one practice."""
    params = {"practiceid": practiceid} if practiceid else {}
    payload = _call("GET", url, "truth", params=params)
    if summary:
        payload = {k: len(v) if isinstance(v, list) else v for k, v in payload.items()}
    _print(payload)


@sandbox.command()
@URL_OPTION
@click.option("--off", is_flag=True, help="Switch every fault off.")
@_fault_options
def faults(url: str, off: bool, **values: Any) -> None:
    """Show the faults in force, or replace them with the given switches."""
    chosen = {k: v for k, v in values.items() if v is not None}
    if not off and not chosen:
        _print(_call("GET", url, "faults"))
        return
    _print(_call("POST", url, "faults", json=_faults(chosen).to_json()))


@sandbox.command("expire-tokens")
@URL_OPTION
def expire_tokens(url: str) -> None:
    """Expire every token the sandbox has issued."""
    _print(_call("POST", url, "tokens/expire"))


@sandbox.command()
@URL_OPTION
@click.option("--advance", type=click.FloatRange(0), help="Move the clock forward SECONDS.")
def clock(url: str, advance: float | None) -> None:
    """Show the sandbox's clock (Date headers, lastmodified stamps), or move it forward."""
    if advance is None:
        _print(_call("GET", url, "clock"))
        return
    _print(_call("POST", url, "clock", json={"advance_seconds": advance}))
