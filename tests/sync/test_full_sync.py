"""End to end: the sandbox over HTTP -> Postgres (and SQLite), compared with the ground truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from sandbox import SandboxServer
from tests.sync.conftest import FORBIDDEN, PRACTICE, Harness, _harness

RESOURCE_TABLES = {
    "providers": ("providers", "provider_id", "providerid"),
    "departments": ("departments", "department_id", "departmentid"),
    "appointmenttypes": ("appointment_types", "appointment_type_id", "appointmenttypeid"),
    "appointments": ("appointments", "appointment_id", "appointmentid"),
}


def _json(value: Any) -> Any:
    """SQLite hands JSON columns back as text through a raw query."""
    return json.loads(value) if isinstance(value, str) else value


def assert_matches_truth(h: Harness, practice_id: str = PRACTICE) -> None:
    """Every served record is in its table exactly once, raw as served, nothing extra live."""
    truth = h.server.truth(practice_id)
    for collection, (table, key, id_field) in RESOURCE_TABLES.items():
        served = {str(r[id_field]): r for r in truth[collection]}
        rows = h.rows(table, f"practice_id = '{practice_id}'", "deleted_at IS NULL")
        stored = {r[key]: _json(r["raw"]) for r in rows}
        assert set(stored) == set(served), f"{table}: ids differ from the ground truth"
        for ident, record in served.items():
            assert stored[ident] == record, f"{table} {ident}: raw differs from what was served"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# Typed column -> how to read it from the served record (independently of the mappers).
TYPED = {
    "providers": {
        "first_name": lambda r: r.get("firstname"),
        "last_name": lambda r: r.get("lastname"),
        "display_name": lambda r: r.get("displayname"),
        "npi": lambda r: _text(r.get("npi")),
        "specialty": lambda r: r.get("specialty"),
        "provider_type": lambda r: r.get("providertype"),
        "billable": lambda r: r.get("billable"),
    },
    "departments": {
        "name": lambda r: r.get("name"),
        "timezone_name": lambda r: r.get("timezonename"),
        "does_not_observe_dst": lambda r: r.get("doesnotobservedst"),
        "city": lambda r: r.get("city"),
        "phone": lambda r: r.get("phone"),
        "provider_ids": lambda r: r["providerlist"],  # the truth always lists them
    },
    "appointment_types": {
        "name": lambda r: r.get("name"),
        "short_name": lambda r: r.get("shortname"),
        "duration_minutes": lambda r: r.get("duration"),
        "generic": lambda r: r.get("generic"),
        "patient": lambda r: r.get("patient"),
    },
    "appointments": {
        "department_id": lambda r: _text(r.get("departmentid")),
        "provider_id": lambda r: _text(r.get("providerid")),
        "patient_id": lambda r: _text(r.get("patientid")),
        "appointment_type_id": lambda r: _text(r.get("appointmenttypeid")),
        "status": lambda r: r.get("appointmentstatus"),
        "duration_minutes": lambda r: r.get("duration"),
        "local_date": lambda r: date(int(r["date"][6:]), int(r["date"][:2]), int(r["date"][3:5])),
        "local_time": lambda r: r["starttime"] + ":00",
        "last_modified_at": lambda r: _eastern(r.get("lastmodified")),
        "cancelled_at": lambda r: _eastern(r.get("cancelleddatetime")),
    },
}


def _eastern(value: str | None) -> datetime | None:
    if value is None:
        return None
    local = datetime.strptime(value, "%m/%d/%Y %H:%M:%S")
    return local.replace(tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


def assert_typed_columns_match(h: Harness, practice_id: str = PRACTICE) -> None:
    """The typed columns say what the served record says (ids as text, times as UTC)."""
    truth = h.server.truth(practice_id)
    for collection, (table, key, id_field) in RESOURCE_TABLES.items():
        rows = {r[key]: r for r in h.rows(table, f"practice_id = '{practice_id}'")}
        for record in truth[collection]:
            row = rows[str(record[id_field])]
            for column, read in TYPED[table].items():
                stored = row[column]
                if column == "local_time":
                    stored = stored.isoformat() if stored is not None else None
                assert stored == read(record), f"{table} {record[id_field]} {column}"


def test_full_sync_equals_ground_truth_on_postgres(pg: Harness) -> None:
    results = pg.sync()
    assert {r.status for r in results} == {"succeeded"}
    assert_matches_truth(pg)
    assert_typed_columns_match(pg)
    truth = pg.server.truth(PRACTICE)
    cancelled = [a for a in truth["appointments"] if a["appointmentstatus"] == "x"]
    assert cancelled, "the sandbox serves cancelled appointments"
    rows = {r["appointment_id"]: r for r in pg.rows("appointments")}
    for appt in cancelled:
        row = rows[appt["appointmentid"]]
        assert row["status"] == "x"
        assert row["cancelled_at"] is not None
        assert row["cancel_reason"] == appt.get("cancelreasonname")
    hidden = set(truth["hiddendepartmentids"])
    assert hidden, "the sandbox has portal-hidden departments"
    for dept in pg.rows("departments"):
        assert dept["hidden"] is (dept["department_id"] in hidden)


def _table_writes(h: Harness) -> dict[str, tuple[int, int]]:
    """(inserts, updates) per resource table from pg_stat_user_tables, after stats are flushed."""
    query = sa.text(
        "SELECT relname, n_tup_ins, n_tup_upd FROM pg_stat_user_tables "
        "WHERE relname IN ('providers','departments','appointment_types','appointments')"
    )
    with h.engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return {name: (ins, upd) for name, ins, upd in conn.execute(query)}


def _settled_writes(h: Harness) -> dict[str, tuple[int, int]]:
    """The counters once the sync's backends (closed with its engine) have flushed them: the
    canary is sync_runs, whose every row those same backends inserted."""
    canary = sa.text(
        "SELECT (SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'sync_runs'), "
        "(SELECT count(*) FROM sync_runs)"
    )
    for _ in range(100):
        with h.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            counted, rows = conn.execute(canary).one()
        if counted == rows:
            return _table_writes(h)
        time.sleep(0.1)
    raise AssertionError("table statistics were never flushed")


def _written_since(h: Harness, xid: int) -> int:
    """Tuples of the resource tables written by transactions after ``xid`` (any write makes a
    new tuple version with a new xmin): an independent check of "writes no rows"."""
    tables = ("providers", "departments", "appointment_types", "appointments")
    with h.engine.connect() as conn:
        return sum(
            conn.execute(
                sa.text(f"SELECT count(*) FROM {t} WHERE xmin::text::bigint > :xid"), {"xid": xid}
            ).scalar_one()
            for t in tables
        )


def test_second_sync_writes_no_rows(pg: Harness) -> None:
    pg.sync()
    before = _settled_writes(pg)
    assert before["appointments"][0] > 0, "the first sync inserted appointments"
    with pg.engine.begin() as conn:
        xid = conn.execute(sa.text("SELECT txid_current() % 4294967296")).scalar_one()
    assert _written_since(pg, xid - 1_000_000) > 0, "the xmin check sees the first sync's rows"
    results = pg.sync(mode="reconcile")
    after = _settled_writes(pg)
    assert after == before, "re-syncing unchanged data wrote rows"
    assert _written_since(pg, xid) == 0
    assert all(r.counts.inserted == r.counts.updated == r.counts.deleted == 0 for r in results)
    assert sum(r.counts.unchanged for r in results) == sum(r.counts.fetched for r in results)


def test_mutations_are_reflected_by_incremental_then_reconcile(pg: Harness) -> None:
    pg.sync()
    time.sleep(1.1)  # lastmodified has one-second resolution
    change = pg.server.mutate(PRACTICE, cancel=4, modify=4, delete=3, add=5, seed=5)
    incremental = pg.sync("appointments", mode="incremental")
    assert {r.status for r in incremental} == {"succeeded"}
    assert sum(r.counts.fetched for r in incremental) < 100, "incremental read only changes"
    deleted_ids = _ids(change, "deleted")
    rows = {r["appointment_id"]: r for r in pg.rows("appointments")}
    for ident in _ids(change, "cancelled"):
        assert rows[ident]["status"] == "x"
    served = {a["appointmentid"]: a for a in pg.server.truth(PRACTICE)["appointments"]}
    modified = [m["appointmentid"] for m in change["modified"]]
    assert len(modified) == 4
    for ident in modified:  # before reconcile: the incremental read alone must carry them
        assert rows[ident]["raw"] == served[ident]
        assert rows[ident]["provider_id"] == served[ident]["providerid"]
        assert rows[ident]["local_time"].strftime("%H:%M") == served[ident]["starttime"]
    for ident in _ids(change, "added"):
        assert ident in rows
    # Deletions are invisible to an incremental read: only reconcile can notice them.
    assert all(rows[i]["deleted_at"] is None for i in deleted_ids)

    # A reconcile spares rows written less than SYNC_CLOCK_SKEW_SECONDS before it began (the
    # hosts' clocks may disagree); these were written seconds ago by one process: no skew.
    reconcile = pg.sync(
        "appointments",
        mode="reconcile",
        settings=pg.settings.with_overrides(sync_clock_skew_seconds=0),
    )
    assert {r.status for r in reconcile} == {"succeeded"}
    assert not any(r.counts.deletions_deferred for r in reconcile)
    assert sum(r.counts.deleted for r in reconcile) == len(deleted_ids)
    assert_matches_truth(pg)
    gone = pg.rows("appointments", "deleted_at IS NOT NULL")
    assert {r["appointment_id"] for r in gone} == set(deleted_ids)


def _ids(change: dict[str, Any], kind: str) -> list[str]:
    items = change.get(kind, [])
    return [i["appointmentid"] if isinstance(i, dict) else str(i) for i in items]


def _expected_utc(day: str, clock: str, zone: str) -> datetime:
    local = datetime(int(day[6:10]), int(day[0:2]), int(day[3:5]), int(clock[:2]), int(clock[3:5]))
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def test_start_at_is_dst_correct_in_every_zone(pg: Harness) -> None:
    pg.sync()
    truth = pg.server.truth(PRACTICE)
    zones = {d["departmentid"]: d["timezonename"] for d in truth["departments"]}
    no_dst = {d["departmentid"] for d in truth["departments"] if d.get("doesnotobservedst")}
    assert no_dst and set(zones) - no_dst, "zones with and without DST are served"
    rows = {r["appointment_id"]: r for r in pg.rows("appointments")}
    for appt in truth["appointments"]:
        zone = zones[appt["departmentid"]]
        assert rows[appt["appointmentid"]]["start_at"] == _expected_utc(
            appt["date"], appt["starttime"], zone
        ), appt["appointmentid"]
    # Fixed points, independent of zoneinfo: on 2026-11-01 US/Eastern falls back at 02:00.
    fall_back = [a for a in truth["appointments"] if a["date"] == "11/01/2026"]
    assert fall_back, "appointments are served on the fall-back Sunday"
    offsets = {
        "US/Eastern": (4, 5),
        "US/Central": (5, 6),
        "US/Mountain": (6, 7),
        "US/Pacific": (7, 8),
        "America/Phoenix": (7, 7),
        "US/Arizona": (7, 7),
    }
    for appt in fall_back:
        zone = zones[appt["departmentid"]]
        hour, minute = int(appt["starttime"][:2]), int(appt["starttime"][3:])
        before_change = hour < 1 or (hour == 1)  # 01:xx is read as its first (daylight) occurrence
        hours = offsets[zone][0 if before_change else 1]
        local = datetime(2026, 11, 1, hour, minute, tzinfo=UTC)
        assert rows[appt["appointmentid"]]["start_at"] == local + timedelta(hours=hours)
        assert rows[appt["appointmentid"]]["local_date"] == date(2026, 11, 1)


def test_forbidden_and_unknown_practices_fail_alone(pg: Harness) -> None:
    results = pg.sync(practices=(FORBIDDEN, PRACTICE, "999999"))
    by_practice: dict[str, set[str]] = {}
    for r in results:
        by_practice.setdefault(r.unit.practice_id, set()).add(r.status)
    assert by_practice[PRACTICE] == {"succeeded"}
    assert "failed" in by_practice[FORBIDDEN] and "succeeded" not in by_practice[FORBIDDEN]
    assert "failed" in by_practice["999999"]
    assert_matches_truth(pg)
    letters = {r["practice_id"]: r for r in pg.rows("dead_letters")}
    assert set(letters) == {FORBIDDEN, "999999"}
    assert letters[FORBIDDEN]["error_class"] == "auth"
    assert letters[FORBIDDEN]["http_status"] == 401
    assert letters[FORBIDDEN]["api_error"] == "Incorrect permissions."
    assert letters["999999"]["error_class"] == "client_error"
    assert letters["999999"]["http_status"] == 404
    assert letters["999999"]["api_error"] == "Invalid practice."


def test_embedded_default_sqlite_equals_ground_truth(make_sandbox: Any, tmp_path: Path) -> None:
    server: SandboxServer = make_sandbox()
    url = f"sqlite:///{tmp_path / 'athena_sync.db'}"
    for harness in _harness(server, url):
        assert {r.status for r in harness.sync()} == {"succeeded"}
        assert_matches_truth(harness)
        again = harness.sync(mode="reconcile")
        assert sum(r.counts.inserted + r.counts.updated + r.counts.deleted for r in again) == 0


@pytest.mark.parametrize("limit", ["7", "5000"])
def test_page_size_does_not_change_the_result(pg: Harness, limit: str) -> None:
    from tests.sync.conftest import settings_for

    settings = settings_for(pg.server, pg.database_url, ATHENA_PAGE_LIMIT=limit)
    assert {r.status for r in pg.sync(settings=settings)} == {"succeeded"}
    assert_matches_truth(pg)


def test_department_without_zone_name_falls_back_to_its_offset(pg: Harness) -> None:
    pg.sync("departments")
    arizona = [d for d in pg.rows("departments") if d["does_not_observe_dst"]]
    assert arizona, "the sandbox serves a department without DST"
    with pg.engine.begin() as conn:
        conn.execute(sa.text("UPDATE departments SET timezone_name = NULL"))
    pg.sync("appointments")
    rows = pg.rows("appointments", f"department_id = '{arizona[0]['department_id']}'")
    assert rows and {r["timezone_name"] for r in rows} == {"America/Phoenix"}
    assert not pg.rows("dead_letters")


def test_zone_from_offset_names_us_zones_and_refuses_to_guess() -> None:
    from worker.parse import zone_from_offset

    assert zone_from_offset(-5, True) == "America/New_York"
    assert zone_from_offset(-7, False) == "America/Phoenix"
    assert zone_from_offset(-7, True) == "America/Denver"
    assert zone_from_offset(3, True) is None
    assert zone_from_offset(None, True) is None


def test_pages_are_written_from_streams_made_ahead(pg: Harness, monkeypatch) -> None:
    """The write path's speed rests on the fetch-ahead thread making each page's COPY stream
    (``prepare_page``): a change that quietly stopped it being used would only show in a
    benchmark. Every page of every resource goes that way, and the data is the API's."""
    import worker.store.upsert as upsert

    used: list[bool] = []
    real = upsert.copy_upsert

    def spy(*args: Any, **kwargs: Any) -> tuple[int, int]:
        used.append(kwargs.get("stream") is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(upsert, "copy_upsert", spy)
    results = pg.sync()
    assert {r.status for r in results} == {"succeeded"}
    assert used and all(used), f"{used.count(False)} of {len(used)} pages written without one"
    assert_matches_truth(pg)
