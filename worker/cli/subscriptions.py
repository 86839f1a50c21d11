"""`athena-sync subscriptions {status|create|delete}`: the changed-data subscriptions.

Each verb works on every resource with a feed (appointments) for the configured or given
practices, prints one row per practice, and records what it learned in ``source_state`` so the
scheduled runs act on it (after ``create`` the next ``appointments-changes`` tick checks again).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from rich.table import Table

from worker.athena.errors import AthenaError
from worker.cli.common import load, runtime_for
from worker.cli.output import console
from worker.resources import Resource, all_resources
from worker.runtime import Runtime
from worker.settings import Settings
from worker.store.runs import utcnow
from worker.sync import subscriptions as subs

Verb = Callable[[Runtime, Resource, str, tuple[str, ...]], subs.Subscription | str]

PRACTICES = click.option(
    "--practice", "practices", multiple=True, help="Practice id (repeatable) [ATHENA_PRACTICE_IDS]."
)
EVENTS = click.option(
    "--event",
    "events",
    multiple=True,
    help="Event name (repeatable), e.g. CheckOut [every event]; `status` says which are missing.",
)


@click.group()
def subscriptions() -> None:
    """The changed-data subscriptions the appointments feed needs (see the README)."""


@subscriptions.command()
@PRACTICES
@EVENTS
def status(practices: tuple[str, ...], events: tuple[str, ...]) -> None:
    """How each practice's subscription stands (GET …/subscription), and the next step."""
    _each(practices, events, _status, "status")


@subscriptions.command()
@PRACTICES
@EVENTS
def create(practices: tuple[str, ...], events: tuple[str, ...]) -> None:
    """Subscribe each practice (POST …/subscription, once per --event or once for all)."""
    _each(practices, events, _create, "asked")


@subscriptions.command()
@PRACTICES
@EVENTS
def delete(practices: tuple[str, ...], events: tuple[str, ...]) -> None:
    """Unsubscribe each practice (DELETE …/subscription, once per --event or once for all)."""
    _each(practices, events, _delete, "status after")


def _status(
    runtime: Runtime, resource: Resource, pid: str, events: tuple[str, ...]
) -> subs.Subscription:
    ctx = runtime.context()
    found = subs.check(ctx.client, ctx.sessions, resource, pid, now=utcnow())
    if found.state == "none":
        return found
    wanted = events or (subs.events(ctx.client, resource, pid) if found.state == "partial" else ())
    missing = [e for e in wanted if e not in found.events]
    if missing:
        detail = f"status {found.status}, missing {', '.join(missing)}"
        return subs.Subscription("partial", found.status, found.events, detail)
    return found


def _create(runtime: Runtime, resource: Resource, pid: str, events: tuple[str, ...]) -> str:
    ctx = runtime.context()
    return subs.subscribe(ctx.client, ctx.sessions, resource, pid, events, now=utcnow())


def _delete(runtime: Runtime, resource: Resource, pid: str, events: tuple[str, ...]) -> str:
    ctx = runtime.context()
    return subs.unsubscribe(ctx.client, ctx.sessions, resource, pid, events, now=utcnow())


def _each(practices: tuple[str, ...], events: tuple[str, ...], verb: Verb, title: str) -> None:
    settings = load()
    chosen = tuple(practices) or settings.require_practices()
    fed = [r for r in all_resources().values() if r.feed is not None]
    table = Table(title="changed-data subscriptions")
    for column in ("practice", "feed", title, "next step"):
        table.add_column(column)
    failed = False
    runtime = runtime_for(settings)
    try:
        for resource in fed:
            for pid in chosen:
                failed |= _row(table, runtime, settings, resource, pid, events, verb)
    finally:
        runtime.close()
    console.print(table)
    sys.exit(1 if failed else 0)


def _row(
    table: Table,
    runtime: Runtime,
    settings: Settings,
    resource: Resource,
    pid: str,
    events: tuple[str, ...],
    verb: Verb,
) -> bool:
    """One practice's row; True when its request failed."""
    assert resource.feed is not None
    try:
        outcome = verb(runtime, resource, pid, events)
    except AthenaError as error:
        table.add_row(pid, resource.feed.path, f"failed: {error}", "")
        return True
    if isinstance(outcome, str):
        table.add_row(pid, resource.feed.path, outcome, "athena-sync subscriptions status")
        return False
    said = subs.advice(
        outcome,
        pid,
        source=settings.sync_appointments_source,
        auto=settings.athena_auto_subscribe,
    )
    table.add_row(pid, resource.feed.path, said.text, said.next_step or "")
    return False
