"""``python -m bench.freshness``: how fresh, how complete, how costly each appointments source is.

For each of ``booked`` per department, ``booked`` multi-department and the ``changed`` feed: the
built-in sandbox (a child process) with one practice of 31 departments, a fresh database loaded
once (``athena-sync sync all``; for the feed also ``subscriptions create`` and a first read),
then ``celery beat`` and two workers for a few minutes while a steady stream of mutations changes
one appointment every few seconds, three kinds in eight on visits weeks in the past (outside the
horizon). Measured: the lag from each change at the API to its row in Postgres (p50/p95/max),
the changes never landed after a grace period (in and outside the horizon), the sandbox's
request counts turned into requests per practice per day, and what a nightly reconcile costs.
Writes its section of bench/RESULTS.md and bench/freshness.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.freshness_stack import Change, MutationStream, Poller, Processes, Truth
from bench.pg import DEFAULT_ADMIN_URL, fresh_database, sqlalchemy_url
from bench.sandbox import CLIENT_ID, CLIENT_SECRET, PRACTICE, DatasetSpec, SandboxProcess
from bench.side_by_side import migrate

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
FEED_PATHS = ("/appointments/changed", "/appointments/changed/subscription")
POLL_PATHS = ("/appointments/booked", "/appointments/booked/multipledepartment")
DAYS_BACK, DAYS_AHEAD = 7, 90


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    env: dict[str, str]
    entry: str
    """The beat entry whose ticks do the work."""


SCENARIOS = (
    Scenario(
        "booked",
        "booked, per department",
        {"SYNC_APPOINTMENTS_SOURCE": "booked", "SYNC_MULTI_DEPARTMENT": "false"},
        "appointments-incremental",
    ),
    Scenario(
        "multi",
        "booked, multi-department",
        {"SYNC_APPOINTMENTS_SOURCE": "booked", "SYNC_MULTI_DEPARTMENT": "true"},
        "appointments-incremental",
    ),
    Scenario(
        "changed",
        "changed feed",
        {"SYNC_APPOINTMENTS_SOURCE": "changed", "SYNC_MULTI_DEPARTMENT": "true"},
        "appointments-changes",
    ),
)


@dataclass(frozen=True)
class Options:
    minutes: float
    grace: float
    interval: float
    departments: int
    appointments: int
    days: int
    workers: int
    rps: float
    admin_url: str
    redis_url: str


@dataclass
class Outcome:
    """What one scenario measured."""

    key: str
    label: str
    changes: int
    inside: int
    landed_inside: int
    outside: int
    landed_outside: int
    lags: list[float]
    ticks: int
    seconds: float
    requests: int
    token_mints: int
    reconcile_requests: int
    differing_inside: int
    differing_outside: int
    extra: dict[str, Any] = field(default_factory=dict)

    def per_tick(self) -> float:
        return self.requests / self.ticks if self.ticks else float("nan")

    def per_day(self, minutes: int) -> int:
        """Requests per practice per day at a ``minutes`` schedule: the ticks' cost, one nightly
        reconcile and (the feed) one subscription check."""
        check = 1 if self.key == "changed" else 0
        return round(self.per_tick() * 1440 / minutes) + self.reconcile_requests + check

    def lag(self, q: float) -> float:
        if not self.lags:
            return float("nan")
        ordered = sorted(self.lags)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _env(
    scenario: Scenario, url: str, database_url: str, options: Options, prefix: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": sqlalchemy_url(database_url),
        "REDIS_URL": options.redis_url,
        "REDIS_KEY_PREFIX": prefix,
        "ATHENA_BASE_URL": url,
        "ATHENA_CLIENT_ID": CLIENT_ID,
        "ATHENA_CLIENT_SECRET": CLIENT_SECRET,
        "ATHENA_PRACTICE_IDS": PRACTICE,
        "ATHENA_RATE_LIMIT_RPS": str(options.rps),
        "SYNC_DAYS_BACK": str(DAYS_BACK),
        "SYNC_DAYS_AHEAD": str(DAYS_AHEAD),
        "SCHEDULE_APPOINTMENTS_MINUTES": "1",
        "SCHEDULE_CHANGES_MINUTES": "1",
        "SCHEDULE_REFERENCE_MINUTES": "1440",
        "SCHEDULE_REPLAY_MINUTES": "1440",
        "SCHEDULE_RECONCILE_CRON": "0 0 1 1 *",
        "SYNC_LEASE_SECONDS": "60",
        # INFO: the harness waits for the workers' "ready." and counts the beat's "Sending due
        # task" lines (WARNING hid both since the JSON/level logging of issue 15).
        "LOG_LEVEL": "INFO",
        **scenario.env,
    }


def _cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(BIN / "athena-sync"), *args],
        env={"PATH": str(BIN), "HOME": "/tmp", **env},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"athena-sync {shlex.join(args)}: {done.returncode}\n{done.stdout}")


def _prepare(scenario: Scenario, env: dict[str, str]) -> None:
    """The practice loaded once; for the feed, subscribed, read once and caught up."""
    if scenario.key == "changed":
        _cli(env, "subscriptions", "create")
    _cli(env, "sync", "all", "--no-progress")
    if scenario.key == "changed":
        _cli(env, "sync", "appointments", "--mode", "changed", "--no-progress")
        _cli(env, "sync", "appointments", "--no-progress")


def _practice_requests(before: dict[str, Any], after: dict[str, Any]) -> int:
    """``/v1`` requests of the practice between two stats snapshots (any status)."""
    then, now = before["practices"].get(PRACTICE, {}), after["practices"].get(PRACTICE, {})
    return int(sum(now.values()) - sum(then.values()))


def _horizon(today: date) -> tuple[date, date]:
    return today - timedelta(days=DAYS_BACK), today + timedelta(days=DAYS_AHEAD)


def _wait_landed(poller: Poller, truth: Truth, scenario: Scenario, grace: float) -> None:
    """Until every change the source can see has landed (the feed: all of them; polling: those
    inside the horizon), at most ``grace`` seconds."""
    first, last = _horizon(datetime.now(UTC).date())

    def expected(change: Change) -> bool:
        return scenario.key == "changed" or first <= truth.rows[change.appointment_id][0] <= last

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(expected(c) for c in poller.pending()):
        time.sleep(1)


def run_scenario(scenario: Scenario, options: Options) -> Outcome:
    """One source: load, then beat + workers under the mutation stream; measure."""
    today = datetime.now(UTC).date()
    spec = DatasetSpec(options.appointments, options.departments, options.days, anchor=today)
    prefix = f"athena-fresh-{scenario.key}-{int(time.time())}"
    with (
        SandboxProcess(spec) as sandbox,
        fresh_database(options.admin_url) as database_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        migrate(database_url)
        env = _env(scenario, sandbox.url, database_url, options, prefix)
        print(f"[{scenario.key}] loading the practice", flush=True)
        _prepare(scenario, env)
        procs = Processes(env, Path(tmp))
        stream = MutationStream(sandbox.url, options.interval)
        poller = Poller(database_url, stream.changes)
        before = sandbox.stats()
        started = time.monotonic()
        try:
            procs.start(options.workers)
            stream.start()
            poller.start()
            print(f"[{scenario.key}] beat, {options.workers} workers, mutations", flush=True)
            time.sleep(options.minutes * 60)
            stream.stop()
            _wait_landed(poller, Truth.read(sandbox.url), scenario, options.grace)
            poller.stop()
            procs.stop("beat")
            ticks = procs.ticks(scenario.entry)
            time.sleep(5)  # the last tick's units finish
            after = sandbox.stats()
            seconds = time.monotonic() - started
        finally:
            procs.stop("beat")
            procs.stop("worker")
        truth = Truth.read(sandbox.url)
        reconcile = _reconcile_cost(sandbox, env)
        return _outcome(
            scenario,
            stream.changes,
            truth,
            today,
            before,
            after,
            ticks,
            seconds,
            reconcile,
            database_url,
        )


def _reconcile_cost(sandbox: SandboxProcess, env: dict[str, str]) -> int:
    before = sandbox.stats()
    _cli(env, "sync", "appointments", "--mode", "reconcile", "--no-progress")
    return _practice_requests(before, sandbox.stats())


def _outcome(
    scenario: Scenario,
    changes: list[Change],
    truth: Truth,
    today: date,
    before: dict[str, Any],
    after: dict[str, Any],
    ticks: int,
    seconds: float,
    reconcile: int,
    database_url: str,
) -> Outcome:
    first, last = _horizon(today)
    for change in changes:
        change.day = truth.rows[change.appointment_id][0]
    inside = [c for c in changes if c.day and first <= c.day <= last]
    outside = [c for c in changes if c not in inside]
    ids_in = {c.appointment_id for c in inside}
    ids_out = {c.appointment_id for c in outside} - ids_in
    differing = truth.differing(database_url, ids_in | ids_out)
    return Outcome(
        key=scenario.key,
        label=scenario.label,
        changes=len(changes),
        inside=len(inside),
        landed_inside=sum(1 for c in inside if c.landed_at),
        outside=len(outside),
        landed_outside=sum(1 for c in outside if c.landed_at),
        lags=[c.lag_seconds for c in changes if c.lag_seconds is not None],
        ticks=ticks,
        seconds=seconds,
        requests=_practice_requests(before, after),
        token_mints=after["token_mints"] - before["token_mints"],
        reconcile_requests=reconcile,
        differing_inside=len(differing & ids_in),
        differing_outside=len(differing & ids_out),
    )


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.0f}"


def render(outcomes: list[Outcome], options: Options, command: str) -> str:
    """The Markdown section of bench/RESULTS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Freshness: the changed-data feed against booked polling",
        "",
        f"Measured {when} with `{command}`. One practice of {options.departments} departments, "
        f"{options.appointments:,} appointments over {options.days} days (a third before today); "
        f"horizon {DAYS_BACK} days back, {DAYS_AHEAD} ahead (4 windows of 31 days); "
        f"{options.workers} workers (one pool process each) and `celery beat`, every source on a "
        f"1-minute schedule; `ATHENA_RATE_LIMIT_RPS={options.rps:g}`; one appointment changed "
        f"every {options.interval:g} s for {options.minutes:g} min (modify, cancel, add; and, 3 in "
        "8, a check-in, check-out or cancellation of a visit 14 or more days ago, outside the "
        f"horizon), then up to {options.grace:.0f} s for the last changes to land.",
        "",
        "Lag: from the change at the API (the sandbox's answer to the mutation) to the row's "
        "`last_seen_at` (stamped as the page is written, just before its commit). Missed: never "
        "landed, and checked against the sandbox's truth at the end (status and `lastmodified`). "
        "Requests: the sandbox's count for the practice during the run, per beat tick, turned "
        "into a day at a 1- and a 5-minute schedule, plus one nightly reconcile (measured after "
        "the run) and, for the feed, one subscription check a day; token mints are per key, "
        "not per practice (about 24 a day), and left out.",
        "",
        "| source | changes (in / outside horizon) | missed in horizon | missed outside | "
        "lag p50 s | p95 s | max s | requests / tick | requests / practice / day at 1 min | "
        "at 5 min | reconcile / night |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.label} | {o.changes} ({o.inside} / {o.outside}) | "
            f"{o.inside - o.landed_inside} (truth differs: {o.differing_inside}) | "
            f"{o.outside - o.landed_outside} (truth differs: {o.differing_outside}) | "
            f"{_fmt(o.lag(0.5))} | {_fmt(o.lag(0.95))} | {_fmt(o.lag(1.0))} | "
            f"{o.per_tick():.1f} | {o.per_day(1):,} | {o.per_day(5):,} | {o.reconcile_requests} |"
        )
    lines += ["", *targets(outcomes), ""]
    return "\n".join(lines)


def targets(outcomes: list[Outcome]) -> list[str]:
    """The issue's targets, PASS or MISS."""
    by = {o.key: o for o in outcomes}
    rows = ["| target | measured | |", "|---|---|:-:|"]

    def row(text: str, measured: str, ok: bool) -> None:
        rows.append(f"| {text} | {measured} | {'PASS' if ok else 'MISS'} |")

    if "changed" in by:
        c = by["changed"]
        row(
            "changed, 1-minute schedule: ≤ 2,000 requests / practice / day",
            f"{c.per_day(1):,}",
            c.per_day(1) <= 2000,
        )
        row(
            "changed, 5-minute schedule: ≤ 400 requests / practice / day",
            f"{c.per_day(5):,}",
            c.per_day(5) <= 400,
        )
        row("changed: p95 lag ≤ 90 s", f"{_fmt(c.lag(0.95))} s", c.lag(0.95) <= 90)
        missed = (c.inside - c.landed_inside) + (c.outside - c.landed_outside)
        wrong = c.differing_inside + c.differing_outside
        row(
            "changed: 0 changes missed, outside the horizon included",
            f"{missed} missed, {wrong} differ from truth",
            missed == 0 and wrong == 0,
        )
    if "booked" in by and "multi" in by:
        ratio = by["multi"].per_day(5) / by["booked"].per_day(5)
        row(
            "booked multi-department ≤ 1/20 of per-department requests (31 departments)",
            f"1/{1 / ratio:.0f} ({by['multi'].per_day(5):,} vs {by['booked'].per_day(5):,} a "
            "day at 5 min)",
            ratio <= 1 / 20,
        )
    return rows


def with_section(text: str, section: str) -> str:
    """``text`` (a RESULTS.md) with its freshness section replaced by ``section``, or added at
    the end; the other sections (another benchmark writes them) are left as they are."""
    head = "## Freshness"
    if head in text:
        start = text.index(head)
        rest = text.find("\n## ", start + len(head))
        text = text[:start] + section + ("\n\n" + text[rest + 1 :] if rest != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    return text.rstrip("\n") + "\n"


def write_results(section: str, outcomes: list[Outcome], folder: Path = HERE) -> None:
    """Replace (or add) this section of RESULTS.md; the raw numbers to freshness.json."""
    path = folder / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(with_section(text, section))
    raw = [{**asdict(o), "p50": o.lag(0.5), "p95": o.lag(0.95)} for o in outcomes]
    (folder / "freshness.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.freshness", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=4.0, help="mutations per source [4]")
    parser.add_argument(
        "--grace", type=float, default=150.0, help="seconds to let changes land [150]"
    )
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between mutations [3]")
    parser.add_argument("--departments", type=int, default=31)
    parser.add_argument("--appointments", type=int, default=20000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rps", type=float, default=5.0, help="ATHENA_RATE_LIMIT_RPS [5]")
    parser.add_argument("--sources", default="booked,multi,changed", help="booked,multi,changed")
    parser.add_argument("--pg-admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args(argv)
    options = Options(
        args.minutes,
        args.grace,
        args.interval,
        args.departments,
        args.appointments,
        args.days,
        args.workers,
        args.rps,
        args.pg_admin_url,
        args.redis_url,
    )
    chosen = [s for s in SCENARIOS if s.key in args.sources.split(",")]
    outcomes = [run_scenario(s, options) for s in chosen]
    command = "python -m bench.freshness " + shlex.join(argv if argv is not None else sys.argv[1:])
    section = render(outcomes, options, command.strip())
    print(section)
    if not args.no_write:
        write_results(section, outcomes)


if __name__ == "__main__":
    main()
