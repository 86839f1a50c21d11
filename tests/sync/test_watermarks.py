"""Incremental watermarks end to end: the sandbox over HTTP -> Postgres (issue 12, items 1, 2).

Every scenario ends with a scheduled incremental run (no ``--from``/``--to``, so over today's
horizon; default overlap; no reconcile) and checks that each change the sandbox made inside the
horizon is in Postgres with its new values. The sandbox serves data around today so that the
horizon below covers it, and its clock is moved forward to stand in for a long read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
import structlog
from click.testing import CliRunner
from structlog.testing import capture_logs

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.athena.client import build_client
from worker.athena.transport import build_session
from worker.cli import cli
from worker.db import make_engine, session_factory, upgrade
from worker.parse import parse_athena_datetime
from worker.runtime import Runtime
from worker.store.runs import RunResult, utcnow
from worker.sync.job import ProgressHook
from worker.sync.plan import SyncRequest, expand_resources, run_request
from worker.units import Unit, default_window, split_windows

# Horizon today-20 .. today+35 in 7-day windows: eight windows per department; the data lies on
# today-15 .. today+29 (plus the DST Sundays nearest today, often outside the horizon).
HORIZON = {"SYNC_DAYS_BACK": "20", "SYNC_DAYS_AHEAD": "35", "SYNC_WINDOW_DAYS": "7"}
OVERLAP = timedelta(seconds=300)  # SYNC_LASTMODIFIED_OVERLAP_SECONDS' default, left as it is
LONG_READ = 600  # seconds the API's clock moves on while a read is in progress


@pytest.fixture
def h(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """A sandbox whose data lies around today, and Postgres; the default overlap."""
    server = make_sandbox(anchor_date=datetime.now(UTC).date())
    upgrade(fresh_pg_url)
    harness = Harness(server, fresh_pg_url, settings_for(server, fresh_pg_url, **HORIZON))
    try:
        yield harness
    finally:
        harness.engine.dispose()


class DropDate:
    """A response hook: a gateway that drops the ``Date`` header (counts what it dropped)."""

    def __init__(self) -> None:
        self.dropped = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.headers.pop("Date", None) is not None:
            self.dropped += 1


def run(
    h: Harness,
    resources: str = "appointments",
    *,
    start: date | None = None,
    end: date | None = None,
    on_progress: ProgressHook | None = None,
    clock: Callable[[], datetime] | None = None,
    drop_date: DropDate | None = None,
) -> list[RunResult]:
    """A run as the beat schedules it (no window: today's horizon), or a manual ``--from``/
    ``--to`` one; in-process, over HTTP, closed after."""
    session = build_session(h.settings)
    if drop_date is not None:
        session.hooks["response"].append(drop_date)
    client = build_client(h.settings, session=session)
    engine = make_engine(h.settings.database_url)
    runtime = Runtime(h.settings, engine, session_factory(engine), client)
    try:
        ctx = runtime.context(on_progress=on_progress)
        if clock is not None:
            ctx.clock = clock
        request = SyncRequest(expand_resources([resources]), (PRACTICE,), start=start, end=end)
        results = run_request(ctx, request)
    finally:
        runtime.close()
    assert {r.status for r in results} == {"succeeded"}, [r.error for r in results]
    return results


def watermarks(h: Harness) -> dict[str, datetime | None]:
    """Department -> its appointments watermark."""
    rows = h.rows("sync_state", "resource = 'appointments'", f"practice_id = '{PRACTICE}'")
    return {r["scope"]: r["watermark"] for r in rows}


def eastern(text: str) -> datetime:
    moment = parse_athena_datetime(text, "lastmodified", required=True)
    assert moment is not None
    return moment


def served(h: Harness) -> dict[str, dict[str, Any]]:
    return {a["appointmentid"]: a for a in h.server.truth(PRACTICE)["appointments"]}


def day_of(record: dict[str, Any]) -> date:
    text = record["date"]
    return date(int(text[6:10]), int(text[0:2]), int(text[3:5]))


def modified_ids(change: dict[str, Any]) -> list[str]:
    return [m["appointmentid"] for m in change["modified"]]


def assert_changes_stored(h: Harness, ids: list[str], horizon: tuple[date, date]) -> None:
    """Each changed appointment inside the horizon is stored exactly as the API now serves it."""
    truth = served(h)
    rows = {r["appointment_id"]: r for r in h.rows("appointments")}
    inside = [i for i in ids if horizon[0] <= day_of(truth[i]) <= horizon[1]]
    assert inside, "the scenario changed appointments inside the horizon"
    stale = [i for i in inside if rows[i]["raw"] != truth[i]]
    assert not stale, f"{len(stale)} of {len(inside)} changes never reached Postgres: {stale}"
    for ident in inside:
        assert rows[ident]["provider_id"] == truth[ident]["providerid"]
        assert rows[ident]["local_time"].strftime("%H:%M") == truth[ident]["starttime"]
        assert rows[ident]["last_modified_at"] == eastern(truth[ident]["lastmodified"])


class ChangesDuringRead:
    """A progress hook: while the first department's incremental read is past its third window,
    modify appointments (some in windows already read), then let the API's clock run on by
    ``LONG_READ`` seconds and modify more (some in windows not read yet).

    Windows are one page each here, so the third page written means windows 1-3 were read;
    fetch-ahead may be reading the fourth, never the fifth.
    """

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.unit: Unit | None = None
        self.pages = 0
        self.early: dict[str, Any] = {}
        self.late: dict[str, Any] = {}

    def __call__(self, unit: Unit, counts: Any) -> None:
        if unit.resource != "appointments":
            return
        self.unit = self.unit or unit
        if unit != self.unit:
            return
        self.pages += 1
        if self.pages == 3:
            self.early = self.server.mutate(PRACTICE, modify=60, seed=21)
            self.server.advance_clock(LONG_READ)
            self.late = self.server.mutate(PRACTICE, modify=60, seed=22)

    def windows(self) -> list[tuple[date, date]]:
        assert self.unit is not None and self.unit.window_start and self.unit.window_end
        return list(split_windows(self.unit.window_start, self.unit.window_end, 7))

    def check_scenario(self, h: Harness) -> None:
        """The interleaving this test is about really happened (else the test proves nothing):
        one page per window; a change to a window already read; a change in the same department,
        in a window read later, newer than it by more than the overlap."""
        windows = self.windows()
        assert self.unit is not None and self.pages == len(windows) == 8
        truth = served(h)
        dept = self.unit.department_id

        def days(change: dict[str, Any]) -> list[date]:
            return [
                day_of(truth[i]) for i in modified_ids(change) if truth[i]["departmentid"] == dept
            ]

        assert any(d <= windows[2][1] for d in days(self.early)), "a change in a window read"
        assert any(windows[4][0] <= d <= windows[-1][1] for d in days(self.late)), "one unread"
        gap = eastern(self.late["lastmodified"]) - eastern(self.early["lastmodified"])
        assert gap > OVERLAP


def _fast_clock() -> datetime:
    return utcnow() + timedelta(hours=1)


@pytest.mark.parametrize(
    "variant", ["with a watermark", "first run", "local clock an hour fast", "no Date header"]
)
def test_a_change_made_during_a_multi_window_read_is_read_by_the_next_run(
    h: Harness, variant: str
) -> None:
    """Item 1: the watermark never passes the moment the read began (the API's clock by the
    first response's ``Date``; this machine's clock before the first request without one)."""
    options: dict[str, Any] = {}
    if variant == "local clock an hour fast":  # the API's Date must win over our clock
        options["clock"] = _fast_clock
    elif variant == "no Date header":  # our clock, read before the first request, is used
        options = {"clock": h.server.sandbox.clock.now, "drop_date": DropDate()}
    if variant != "first run":
        run(h, "all", **options)
    hook = ChangesDuringRead(h.server)
    run(h, "all" if variant == "first run" else "appointments", on_progress=hook, **options)
    hook.check_scenario(h)
    if "drop_date" in options:
        assert options["drop_date"].dropped > 0, "responses reached the sync without Date"

    assert hook.unit is not None
    stored = watermarks(h)[str(hook.unit.department_id)]

    run(h, **options)  # the next scheduled run
    windows = hook.windows()
    ids = modified_ids(hook.early) + modified_ids(hook.late)
    assert_changes_stored(h, ids, (windows[0][0], windows[-1][1]))
    assert stored is not None
    assert stored <= eastern(hook.early["lastmodified"]), "past a change made during the read"


def _horizon(today: date) -> tuple[date, date]:
    return default_window(today, days_back=20, days_ahead=35)


@pytest.fixture
def info_logs() -> Iterator[None]:
    """Let info events through (a CLI test may have configured ERROR); restore afterwards."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0))
    yield
    structlog.configure(**saved)


def test_a_narrow_manual_run_leaves_the_watermark_to_the_scheduled_run(
    h: Harness, info_logs: None
) -> None:
    """Item 2: ``sync appointments --from D --to D`` reads with the watermark and leaves it; the
    changes it did not look at (other days) are read by the next scheduled run."""
    run(h, "all")  # scheduled: covers the horizon, sets every department's watermark
    before = watermarks(h)
    early = h.server.mutate(PRACTICE, modify=40, seed=31)  # changes on many days
    h.server.advance_clock(LONG_READ)
    late = h.server.mutate(PRACTICE, modify=1, seed=32)  # later, one change on one day
    truth = served(h)
    (late_id,) = modified_ids(late)
    day, dept = day_of(truth[late_id]), truth[late_id]["departmentid"]
    horizon = _horizon(datetime.now(UTC).date())
    assert horizon[0] <= day <= horizon[1]
    others = [i for i in modified_ids(early) if truth[i]["departmentid"] == dept]
    assert any(day_of(truth[i]) != day for i in others), "its department changed on other days"

    with capture_logs() as logs:
        narrow = run(h, start=day, end=day)
    kept = watermarks(h)
    run(h)  # the next scheduled run
    assert_changes_stored(h, [*modified_ids(early), late_id], horizon)

    assert kept == before, "a narrow run moved a department's watermark"
    assert all((r.note or "").startswith("watermark kept") for r in narrow)
    finished = [e for e in logs if e["event"] == "sync.unit_finished"]
    assert len(finished) == len(narrow) and all("watermark kept" in e["note"] for e in finished)
    on_day = [a for a in truth.values() if day_of(a) == day]
    since = {d: w - OVERLAP for d, w in before.items() if w is not None}
    changed = [a for a in on_day if eastern(a["lastmodified"]) >= since[a["departmentid"]]]
    assert sum(r.counts.fetched for r in narrow) == len(changed) < len(on_day), (
        "the narrow run read only what changed since the watermark (startlastmodified)"
    )


def test_only_a_run_covering_the_horizon_advances_the_watermark(h: Harness) -> None:
    """A manual window wider than the horizon is as good as the scheduled run's."""
    run(h, "all")
    before = watermarks(h)
    h.server.advance_clock(LONG_READ)
    h.server.mutate(PRACTICE, modify=20, seed=41)
    first, last = _horizon(datetime.now(UTC).date())
    wide = run(h, start=first - timedelta(days=3), end=last + timedelta(days=1))
    assert all(r.note is None for r in wide)
    after = watermarks(h)
    moved = [(before[d], after[d]) for d in before if after[d] != before[d]]
    assert moved and all(b is not None and a is not None and a > b for b, a in moved)


def test_the_cli_summary_says_a_narrow_run_kept_the_watermark(h: Harness) -> None:
    env = {
        "DATABASE_URL": h.database_url,
        "ATHENA_BASE_URL": h.server.url,
        "ATHENA_CLIENT_ID": h.server.config.client_id,
        "ATHENA_CLIENT_SECRET": h.server.config.client_secret,
        "ATHENA_PRACTICE_IDS": PRACTICE,
        "ATHENA_RATE_LIMIT_RPS": "1000",
        "ATHENA_RATE_LIMIT_BURST": "1000",
        "LOG_LEVEL": "ERROR",
        "REDIS_KEY_PREFIX": h.settings.redis_key_prefix,
        "SYNC_MULTI_DEPARTMENT": "false",  # a unit, and a summary line, per department
        **HORIZON,
    }
    runner = CliRunner()
    full = runner.invoke(cli, ["sync", "all", "--no-progress"], env=env)
    assert full.exit_code == 0, full.output
    assert "sync summary" in full.output and "watermark kept" not in full.output
    before = watermarks(h)
    day = datetime.now(UTC).date().isoformat()
    narrow = runner.invoke(
        cli, ["sync", "appointments", "--from", day, "--to", day, "--no-progress"], env=env
    )
    assert narrow.exit_code == 0, narrow.output
    assert narrow.output.count("watermark kept") == len(before) == 5  # one line per department
    assert watermarks(h) == before
