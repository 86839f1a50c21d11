"""Dead letters: each class of failure lands once with the right fields, replay resolves it."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from sandbox import FaultConfig
from tests.sync.conftest import PRACTICE, Harness
from worker.cli import cli
from worker.runtime import open_runtime
from worker.sync.replay import replay_letters


def _replay_all(h: Harness, **kwargs: Any) -> list[Any]:
    runtime = open_runtime(h.settings)
    try:
        return replay_letters(runtime.context(), all_open=True, **kwargs)
    finally:
        runtime.close()


def _appointment_ids(h: Harness) -> set[str]:
    return {r["appointment_id"] for r in h.rows("appointments", "deleted_at IS NULL")}


def test_malformed_records_are_kept_and_everything_else_lands(pg_faulty: Harness) -> None:
    h = pg_faulty
    results = h.sync()
    truth = h.server.truth(PRACTICE)
    served = len(truth["appointments"]) + len(truth["malformed"])
    letters = h.rows("dead_letters")
    assert len(truth["malformed"]) == 5
    assert len(letters) == 5
    assert all(d["kind"] == "record" and d["error_class"] == "bad_record" for d in letters)
    assert all(d["state"] == "open" and d["attempts"] == 1 for d in letters)
    assert all(d["record"] is not None and d["error_message"] for d in letters)
    landed = len(_appointment_ids(h))
    assert landed + len(letters) == served, "records landed + dead-lettered = records served"
    assert {d["record"]["appointmentid"] for d in letters if d["record"].get("appointmentid")} <= {
        str(m["record"].get("appointmentid")) for m in truth["malformed"]
    } | {m["record"].get("appointmentid") for m in truth["malformed"]}
    assert any(r.status == "partial" for r in results)
    assert sum(r.counts.dead_lettered for r in results) == 5

    h.sync(mode="reconcile")
    again = h.rows("dead_letters")
    assert len(again) == 5, "the same bad record seen again bumps attempts, not rows"
    assert {d["attempts"] for d in again} == {2}


@pytest.mark.parametrize(
    ("faults", "error_class", "status"),
    [
        ({"error_rate": 1.0, "html_502_share": 1.0}, "retries_exhausted", 502),
        ({"rate_429": 1.0, "retry_after_share": 0.0}, "retries_exhausted", 429),
        ({"legacy_throttle_rate": 1.0}, "retries_exhausted", 403),
        ({"envelope_error_rate": 1.0}, "retries_exhausted", 200),
    ],
)
def test_exhausted_retries_land_once_then_replay_resolves(
    pg: Harness, faults: dict[str, Any], error_class: str, status: int
) -> None:
    h = pg
    h.sync("departments")
    h.server.set_faults(FaultConfig(**faults))
    results = h.sync("appointments")
    assert results and {r.status for r in results} == {"failed"}
    letters = h.rows("dead_letters")
    assert len(letters) == len(results), "one letter per failed unit"
    for letter in letters:
        assert letter["kind"] == "request"
        assert letter["error_class"] == error_class
        assert letter["http_status"] == status
        assert letter["path"] == "/appointments/booked"
        assert letter["params"]["departmentid"] == letter["department_id"]
        assert letter["task_args"]["resource"] == "appointments"
        assert "sandbox-secret" not in str(letter) and "access_token" not in str(letter)
    h.sync("appointments")
    assert len(h.rows("dead_letters")) == len(letters), "a repeat failure bumps, never adds"
    assert {d["attempts"] for d in h.rows("dead_letters")} == {2}
    assert not _appointment_ids(h)

    h.server.set_faults(FaultConfig())
    outcomes = _replay_all(h)
    assert {o.result for o in outcomes} == {"resolved"}
    assert {d["state"] for d in h.rows("dead_letters")} == {"resolved"}
    truth_ids = {a["appointmentid"] for a in h.server.truth(PRACTICE)["appointments"]}
    assert _appointment_ids(h) == truth_ids


def test_faulty_run_loses_nothing(make_sandbox: Any, fresh_pg_url: str) -> None:
    from tests.sync.conftest import _harness

    server = make_sandbox(
        faults=FaultConfig(malformed_appointments=4, error_rate=0.3, rate_429=0.1, seed=9)
    )
    for h in _harness(server, fresh_pg_url):
        h.sync()
        truth = server.truth(PRACTICE)
        letters = h.rows("dead_letters")
        failed_depts = {d["department_id"] for d in letters if d["kind"] == "request"}
        kept = {d["record_id"] for d in letters if d["kind"] == "record"}
        landed = _appointment_ids(h)
        for appt in truth["appointments"]:
            ident = appt["appointmentid"]
            assert ident in landed or appt["departmentid"] in failed_depts, ident
        # After the faults clear, a replay closes every request letter and the sum is exact.
        server.set_faults(FaultConfig(malformed_appointments=4, seed=9))
        _replay_all(h, classes=["retries_exhausted"])
        letters = h.rows("dead_letters", "state = 'open'")
        assert all(d["kind"] == "record" for d in letters)
        served = len(truth["appointments"]) + len(truth["malformed"])
        assert len(_appointment_ids(h)) + len(letters) == served
        assert kept <= {d["record_id"] for d in letters}


def test_record_letter_replay_lands_the_record_once_it_maps(pg: Harness) -> None:
    h = pg
    h.sync()
    victim = h.rows("appointments")[0]
    record = victim["raw"]
    with h.engine.begin() as conn:
        conn.exec_driver_sql(
            "DELETE FROM appointments WHERE appointment_id = %s", (victim["appointment_id"],)
        )
    # Store the record as a letter, as if an older mapper had refused it.
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from worker.store.letters import BadRecordLetter, add_record_letters

    with Session(h.engine) as session, session.begin():
        add_record_letters(
            session,
            [BadRecordLetter(record, victim["appointment_id"], "old mapper bug")],
            resource="appointments",
            practice_id=PRACTICE,
            department_id=None,
            path=None,
            run_id=None,
            now=datetime.now(UTC),
        )
    outcomes = _replay_all(h)
    assert [o.result for o in outcomes] == ["resolved"]
    assert victim["appointment_id"] in _appointment_ids(h)


def test_cli_lists_shows_replays_and_discards(pg_faulty: Harness) -> None:
    h = pg_faulty
    h.sync(practices=(PRACTICE, "1128700"))
    env = {
        "DATABASE_URL": h.database_url,
        "ATHENA_BASE_URL": h.server.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": "sandbox-secret",
        "LOG_LEVEL": "ERROR",
    }
    runner = CliRunner()
    listed = runner.invoke(cli, ["dead-letters", "list", "--resource", "appointments"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "bad_record" in listed.output and "auth" not in listed.output
    auth = [d for d in h.rows("dead_letters") if d["error_class"] == "auth"]
    assert len(auth) == 1
    shown = runner.invoke(cli, ["dead-letters", "show", str(auth[0]["id"])], env=env)
    assert shown.exit_code == 0 and "Incorrect permissions." in shown.output
    dry = runner.invoke(cli, ["dead-letters", "replay", "--all-open", "--dry-run"], env=env)
    assert dry.exit_code == 0 and "would replay" in dry.output
    assert {d["state"] for d in h.rows("dead_letters")} == {"open"}
    replay = runner.invoke(cli, ["dead-letters", "replay", str(auth[0]["id"])], env=env)
    assert replay.exit_code == 1, "the practice still refuses us: replay fails"
    assert h.rows("dead_letters", f"id = {auth[0]['id']}")[0]["attempts"] == 2
    discard = runner.invoke(
        cli,
        ["dead-letters", "discard", str(auth[0]["id"]), "--reason", "not our practice"],
        env=env,
    )
    assert discard.exit_code == 0
    row = h.rows("dead_letters", f"id = {auth[0]['id']}")[0]
    assert row["state"] == "discarded" and row["resolution_note"] == "not our practice"
    runs = runner.invoke(cli, ["runs"], env=env)
    assert runs.exit_code == 0 and "open dead letters" in runs.output


def test_a_later_successful_run_resolves_the_units_letter(pg: Harness) -> None:
    h = pg
    h.sync("departments")
    h.server.set_faults(FaultConfig(error_rate=1.0, seed=1))
    failed = h.sync("providers")
    assert [r.status for r in failed] == ["failed"]
    h.server.set_faults(FaultConfig(error_rate=1.0, html_502_share=0.0, seed=2))
    h.sync("providers")
    letters = h.rows("dead_letters")
    assert len(letters) == 1 and letters[0]["attempts"] == 2, "a 500 after a 502: one letter"
    h.server.set_faults(FaultConfig())
    ok = h.sync("providers")
    assert [r.status for r in ok] == ["succeeded"]
    letter = h.rows("dead_letters")[0]
    assert letter["state"] == "resolved"
    assert letter["resolution_note"] == f"unit succeeded in run {ok[0].run_id}"


def test_orphaned_running_rows_are_failed_by_the_sweep(pg: Harness) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from worker.store.runs import fail_orphaned_runs, start_run
    from worker.units import Unit

    now = datetime.now(UTC)
    with Session(pg.engine) as session, session.begin():
        old = start_run(
            session,
            Unit("providers", PRACTICE),
            run_group="g",
            task_id=None,
            now=now - timedelta(hours=3),
        )
        fresh = start_run(
            session, Unit("departments", PRACTICE), run_group="g", task_id=None, now=now
        )
        assert fail_orphaned_runs(session, older_than=timedelta(hours=1), now=now) == 1
    statuses = {r["id"]: r["status"] for r in pg.rows("sync_runs")}
    assert statuses == {old: "failed", fresh: "running"}


def test_a_letter_is_marked_replayed_while_its_unit_runs(pg: Harness) -> None:
    h = pg
    h.sync("departments")
    h.server.set_faults(FaultConfig(error_rate=1.0, seed=1))
    h.sync("providers")
    h.server.set_faults(FaultConfig())
    seen: list[str] = []

    def spy(ctx: Any, unit: Any) -> Any:
        seen.append(h.rows("dead_letters")[0]["state"])
        from worker.sync.runner import run_unit

        return run_unit(ctx, unit)

    runtime = open_runtime(h.settings)
    try:
        outcomes = replay_letters(runtime.context(), all_open=True, run=spy)
    finally:
        runtime.close()
    assert seen == ["replayed"]
    assert [o.result for o in outcomes] == ["resolved"]
    assert h.rows("dead_letters")[0]["state"] == "resolved"


def test_an_incremental_unit_failing_on_two_days_keeps_one_letter(pg: Harness) -> None:
    from datetime import UTC, datetime, timedelta

    from worker.runtime import open_runtime
    from worker.sync.plan import SyncRequest, run_request

    h = pg
    h.sync("departments")
    h.server.set_faults(FaultConfig(error_rate=1.0, seed=4))
    runtime = open_runtime(h.settings)
    try:
        for day in (0, 1):  # the default horizon moves with "today"
            ctx = runtime.context()
            ctx.clock = lambda day=day: datetime.now(UTC) + timedelta(days=day)  # type: ignore[misc]
            run_request(ctx, SyncRequest(("appointments",), (PRACTICE,), "incremental"))
        letters = h.rows("dead_letters")
        assert letters and {d["attempts"] for d in letters} == {2}, "one letter per department"
        h.server.set_faults(FaultConfig())
        ctx = runtime.context()
        ctx.clock = lambda: datetime.now(UTC) + timedelta(days=2)  # type: ignore[misc]
        run_request(ctx, SyncRequest(("appointments",), (PRACTICE,), "incremental"))
    finally:
        runtime.close()
    assert {d["state"] for d in h.rows("dead_letters")} == {"resolved"}


def test_replaying_a_stale_record_never_overwrites_newer_data(pg: Harness) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import Session

    from worker.store.letters import BadRecordLetter, add_record_letters

    h = pg
    h.sync()
    row = h.rows("providers")[0]
    stale = {**row["raw"], "lastname": "Old-Name"}
    with Session(h.engine) as session, session.begin():
        add_record_letters(
            session,
            [BadRecordLetter(stale, row["provider_id"], "old mapper bug")],
            resource="providers",
            practice_id=PRACTICE,
            department_id=None,
            path=None,
            run_id=None,
            now=datetime.now(UTC) - timedelta(days=1),
        )
    outcomes = _replay_all(h)
    assert [o.result for o in outcomes] == ["superseded"]
    assert h.rows("providers", f"provider_id = '{row['provider_id']}'")[0]["last_name"] != (
        "Old-Name"
    )
    assert h.rows("dead_letters")[0]["state"] == "resolved"


def test_replaying_a_record_the_guard_refuses_says_so(pg: Harness) -> None:
    """The row was written before the letter (so not "synced since"), but it carries a newer
    lastmodified than the lettered copy: the guard keeps the row, and the replay must say the
    record was not written rather than "re-mapped and stored"."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from sqlalchemy.orm import Session

    from worker.store.letters import BadRecordLetter, add_record_letters

    h = pg
    h.sync()
    row = next(r for r in h.rows("appointments") if r["last_modified_at"] is not None)
    older = row["last_modified_at"].astimezone(ZoneInfo("US/Eastern")) - timedelta(days=2)
    stale = {**row["raw"], "lastmodified": older.strftime("%m/%d/%Y %H:%M:%S")}
    stale["appointmentstatus"] = "x" if row["status"] != "x" else "f"
    with Session(h.engine) as session, session.begin():
        add_record_letters(
            session,
            [BadRecordLetter(stale, row["appointment_id"], "old mapper bug")],
            resource="appointments",
            practice_id=PRACTICE,
            department_id=row["department_id"],
            path=None,
            run_id=None,
            now=datetime.now(UTC),
        )
    outcomes = _replay_all(h)
    assert [o.result for o in outcomes] == ["superseded"]
    stored = h.rows("appointments", f"appointment_id = '{row['appointment_id']}'")[0]
    assert stored["status"] == row["status"]
    letter = h.rows("dead_letters")[0]
    assert letter["state"] == "resolved" and "not written" in letter["resolution_note"]
