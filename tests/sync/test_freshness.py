"""`athena-sync freshness` and the freshness gauges over a real sync: one statement however many
departments, a stale department turning warn then error (exit codes 1 and 2, and in
``athena_sync_freshness_seconds`` / ``_state`` served by `athena-sync metrics serve`). Time is
moved by moving the runs' own timestamps, never by sleeping."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from sandbox import FaultConfig, SandboxServer
from tests.sync.conftest import PRACTICE, Harness, covering_window
from worker.cli import cli
from worker.db import session_factory, upgrade
from worker.runtime import open_runtime
from worker.settings import settings_from_env
from worker.store.freshness import Thresholds
from worker.store.freshness_query import freshness
from worker.store.runs import utcnow
from worker.sync.plan import SyncRequest, run_request

BIN = Path(sys.executable).parent


def _env(harness: Harness, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": harness.database_url,
        "ATHENA_PRACTICE_IDS": PRACTICE,
        "LOG_LEVEL": "ERROR",
        **extra,
    }


def _freshness_json(harness: Harness) -> tuple[int, list[dict[str, Any]]]:
    result = CliRunner().invoke(cli, ["freshness", "--json"], env=_env(harness))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    document = json.loads(result.stdout)
    assert document["exit_code"] == result.exit_code
    return result.exit_code, document["rows"]


def _age_runs(harness: Harness, department: str, minutes: int) -> None:
    """Pretend the department's appointment reads began ``minutes`` ago (and nothing since)."""
    with harness.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync_runs SET started_at = now() - make_interval(mins => :m), "
                "finished_at = now() - make_interval(mins => :m) + interval '1 second' "
                "WHERE resource = 'appointments' AND department_id = :d"
            ),
            {"m": minutes, "d": department},
        )


def test_thirty_departments_are_judged_in_one_statement(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    server = make_sandbox(departments=30, appointments=300, days=10)
    upgrade(fresh_pg_url)
    harness = Harness(server, fresh_pg_url)
    try:
        assert all(r.status == "succeeded" for r in harness.sync())
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        sa.event.listen(harness.engine, "before_cursor_execute", count)
        sessions = session_factory(harness.engine)
        with sessions() as session:
            rows = freshness(
                session,
                practices=(PRACTICE,),
                thresholds=Thresholds.from_settings(harness.settings),
                now=utcnow(),
            )
        sa.event.remove(harness.engine, "before_cursor_execute", count)
    finally:
        harness.engine.dispose()
    appointments = [r for r in rows if r.resource == "appointments"]
    assert len(statements) == 1, statements
    assert len(appointments) == 30 and len(rows) == 33
    assert {r.source for r in appointments} == {"booked"}
    assert {r.source for r in rows if r.resource != "appointments"} == {"listing"}
    assert {r.state for r in rows} == {"ok"}
    assert all(r.watermark is not None for r in appointments)


def test_a_stale_department_turns_warn_then_error(pg: Harness) -> None:
    assert all(r.status == "succeeded" for r in pg.sync())
    code, rows = _freshness_json(pg)
    assert code == 0 and {r["state"] for r in rows} == {"ok"}
    stale = sorted(r["department_id"] for r in rows if r["resource"] == "appointments")[0]

    # Appointments are read every 5 minutes: 25 minutes old is 20 late, past the 15 to warn.
    _age_runs(pg, stale, 25)
    code, rows = _freshness_json(pg)
    by_state = {r["state"]: r for r in rows if r["state"] != "ok"}
    assert code == 1 and list(by_state) == ["warn"]
    assert by_state["warn"]["department_id"] == stale and by_state["warn"]["age_seconds"] > 24 * 60
    with _metrics_server(pg) as scrape:
        assert scrape()[("appointments", stale)] == pytest.approx((25 * 60, 1), abs=60)

    _age_runs(pg, stale, 70)
    code, rows = _freshness_json(pg)
    assert code == 2 and [r["department_id"] for r in rows if r["state"] == "error"] == [stale]
    assert [r for r in rows if r["state"] == "warn"] == []
    with _metrics_server(pg) as scrape:
        found = scrape()
        assert found[("appointments", stale)] == pytest.approx((70 * 60, 2), abs=60)
        fresh = [v for (res, dept), v in found.items() if dept not in ("", stale)]
        assert fresh and all(age < 300 and state == 0 for age, state in fresh)


def test_a_practice_never_synced_is_an_error(pg: Harness) -> None:
    result = CliRunner().invoke(cli, ["freshness"], env=_env(pg))
    assert result.exit_code == 2, result.output
    assert "never" in result.stdout and "error" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Served:
    def __init__(self, harness: Harness) -> None:
        self.port = _free_port()
        env = {**_env(harness), "PATH": str(BIN)}
        argv = [str(BIN / "athena-sync"), "metrics", "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics") as reply:
                    return str(reply.read().decode())
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.1)

    def __call__(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(resource, department) -> (age seconds, state) of the practice's rows."""
        ages: dict[tuple[str, str], float] = {}
        states: dict[tuple[str, str], float] = {}
        for family in text_string_to_metric_families(self.text()):
            for sample in family.samples:
                if sample.labels.get("practice") != PRACTICE:
                    continue
                key = (sample.labels.get("resource", ""), sample.labels.get("department", ""))
                if sample.name == "athena_sync_freshness_seconds":
                    ages[key] = sample.value
                elif sample.name == "athena_sync_freshness_state":
                    states[key] = sample.value
        assert ages.keys() == states.keys() and ages
        return {key: (ages[key], states[key]) for key in ages}


@contextlib.contextmanager
def _metrics_server(harness: Harness) -> Iterator[_Served]:
    """`athena-sync metrics serve` on a free port, killed afterwards."""
    served = _Served(harness)
    try:
        yield served
    finally:
        served.proc.kill()
        served.proc.wait(timeout=10)


def test_settings_refuse_an_error_threshold_below_the_warning() -> None:
    from worker.settings import SettingsError

    with pytest.raises(SettingsError, match="FRESHNESS_ERROR_MINUTES"):
        settings_from_env({"FRESHNESS_WARN_MINUTES": "30", "FRESHNESS_ERROR_MINUTES": "20"})


def test_a_feed_run_covers_every_department_in_the_real_query(pg: Harness) -> None:
    """A succeeded practice-level ``changed`` run (the changed-data feed, department NULL) is
    read by the one statement as covering every department, source ``changed``."""
    assert all(r.status == "succeeded" for r in pg.sync())
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync_runs SET started_at = now() - interval '3 hours', "
                "finished_at = now() - interval '3 hours' WHERE resource = 'appointments'"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO sync_runs (resource, practice_id, mode, status, started_at, "
                "finished_at) VALUES ('appointments', :p, 'changed', 'succeeded', "
                "now() - interval '1 minute', now())"
            ),
            {"p": PRACTICE},
        )
    code, rows = _freshness_json(pg)
    appointments = [r for r in rows if r["resource"] == "appointments"]
    assert code == 0 and appointments
    assert {(r["source"], r["state"]) for r in appointments} == {("changed", "ok")}


def _sync_days(harness: Harness, first: date, last: date, **overrides: Any) -> list[Any]:
    """`athena-sync sync appointments --from FIRST --to LAST`, in-process."""
    runtime = open_runtime(harness.settings.with_overrides(**overrides))
    try:
        request = SyncRequest(("appointments",), (PRACTICE,), "incremental", first, last)
        return run_request(runtime.context(), request)
    finally:
        runtime.close()


@pytest.mark.parametrize("together", [False, True], ids=["per-department", "multi-department"])
def test_a_narrow_manual_run_does_not_make_the_practice_look_fresh(
    pg: Harness, together: bool
) -> None:
    """Only a read of the whole horizon says how fresh a department is: a `--from D --to D` run
    (its watermark kept) read one day of it, per department or all departments together."""
    assert all(r.status == "succeeded" for r in pg.sync())
    with pg.engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sync_runs SET started_at = now() - interval '3 hours', "
                "finished_at = now() - interval '3 hours' WHERE resource = 'appointments'"
            )
        )
    today = utcnow().date()
    narrow = _sync_days(pg, today, today, sync_multi_department=together)
    assert narrow and all(r.status == "succeeded" for r in narrow)
    assert {r.unit.department_id is None for r in narrow} == {together}
    assert all((r.note or "").startswith("watermark kept") for r in narrow)
    code, rows = _freshness_json(pg)
    appointments = [r for r in rows if r["resource"] == "appointments"]
    assert code == 2 and appointments
    assert {r["state"] for r in appointments} == {"error"}
    assert all(r["age_seconds"] > 3 * 3600 - 60 for r in appointments)

    # A run over the horizon (as scheduled) does.
    assert all(r.status == "succeeded" for r in pg.sync("appointments"))
    code, rows = _freshness_json(pg)
    assert code == 0 and {r["state"] for r in rows} == {"ok"}


def test_open_letters_without_a_department_count_in_every_department_row(pg: Harness) -> None:
    """A multi-department read that fails leaves one letter for the whole practice (department
    NULL): every department's row counts it."""
    assert all(r.status == "succeeded" for r in pg.sync())
    pg.server.set_faults(FaultConfig(error_rate=1.0, html_502_share=0.0))
    try:
        (failed,) = _sync_days(
            pg, *covering_window(pg.server, pg.settings), sync_multi_department=True
        )
    finally:
        pg.server.set_faults(FaultConfig())
    assert failed.status == "failed" and failed.unit.department_id is None
    letters = pg.rows("dead_letters", "state = 'open'")
    assert [(r["resource"], r["department_id"]) for r in letters] == [("appointments", None)]
    _, rows = _freshness_json(pg)
    appointments = [r for r in rows if r["resource"] == "appointments"]
    assert len(appointments) == 5 and {r["open_letters"] for r in appointments} == {1}
    assert {r["open_letters"] for r in rows if r["resource"] != "appointments"} == {0}
