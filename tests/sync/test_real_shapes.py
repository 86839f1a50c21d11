"""Syncing payloads shaped like the real API's (ATHENA_API.md), served by a scripted server:
the shapes and misbehaviours our sandbox does not produce."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.athena.conftest import Reply, ScriptedServer, Seen
from tests.sync.conftest import Harness
from worker.db import upgrade
from worker.settings import settings_from_env

# From ATHENA_API.md §2.2-2.5 (recorded shapes).
DEPARTMENT = {
    "departmentid": "1",
    "name": "MAIN ST (HUB)",
    "patientdepartmentname": "Rome Office",
    "address": "8762 STONERIDGE CT",
    "city": "CLAXTON",
    "state": "GA",
    "zip": "30417",
    "phone": "(555) 916-7897",
    "timezone": -4,
    "timezoneoffset": -5,
    "timezonename": "US/Eastern",
    "doesnotobservedst": False,
    "providergroupid": "1",
    "providergroupname": "Downtown Health Group",
    "servicedepartment": True,
    "ishospitaldepartment": False,
    "placeofservicetypeid": "11",
    "clinicals": "ON",
    "providerlist": ["68", "69", "75"],
}
NO_ZONE_NAME = {
    "departmentid": "2",
    "name": "DESERT",
    "timezoneoffset": -7,
    "doesnotobservedst": True,
}
PROVIDER = {
    "providerid": 118,
    "firstname": "Shayna",
    "lastname": "Avallone",
    "displayname": "Shayna Avallone, MD",
    "npi": 1245319599,
    "specialty": "Internal Medicine",
    "providertype": "MD",
    "providertypeid": "MD",
    "entitytype": "Person",
    "billable": True,
    "schedulingname": "savallone1",
    "providergrouplist": ["2", "22"],
    "otherprovideridlist": ["119"],
    "hideinportal": False,
    "createencounteroncheckin": True,
}
SPARSE_PROVIDER = {"providerid": "120", "firstname": "Only", "lastname": "Names"}
APPOINTMENT_TYPE = {
    "appointmenttypeid": 82,
    "name": "Any 15",
    "shortname": "ANY5",
    "duration": 15,
    "patientdisplayname": "Established Patient",
    "generic": True,
    "patient": True,
    "templatetypeonly": False,
    "createencounteroncheckin": True,
}
APPOINTMENT = {
    "appointmentid": "1115851",
    "date": "06/01/2020",
    "starttime": "08:00",
    "duration": 15,
    "appointmentstatus": "f",
    "departmentid": "1",
    "providerid": "69",
    "hl7providerid": 69,
    "patientid": "7895",
    "appointmenttypeid": "82",
    "appointmenttype": "Any 15",
    "patientappointmenttypename": "Any 15",
    "lastmodified": "06/02/2020 17:30:37",
    "lastmodifiedby": "API-15378",
    "scheduleddatetime": "06/02/2020 17:30:37",
    "scheduledby": "API-15378",
    "templateappointmentid": "1115851",
    "templateappointmenttypeid": "82",
    "copay": 0,
    "chargeentrynotrequired": False,
    "coordinatorenterprise": False,
}


def appointment(ident: str, **changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(APPOINTMENT)
    record.update(appointmentid=ident, templateappointmentid=ident, **changes)
    return record


class FakeAthena:
    """Listings served with real paging (limit/offset/totalcount/next), editable per test."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.listings: dict[str, list[Any]] = {
            "departments": [DEPARTMENT, NO_ZONE_NAME],
            "providers": [PROVIDER, SPARSE_PROVIDER],
            "appointmenttypes": [APPOINTMENT_TYPE],
        }
        self.appointments: dict[str, list[Any]] = {"1": [], "2": []}
        self.after_first_page: list[Any] | None = None
        for name in self.listings:
            server.api(f"/{name}", self._listing(name))
        server.api("/appointments/booked", self._booked)

    def _page(self, collection: str, rows: list[Any], seen: Seen) -> Reply:
        limit, offset = int(seen.query.get("limit", 1000)), int(seen.query.get("offset", 0))
        body: dict[str, Any] = {"totalcount": len(rows), collection: rows[offset : offset + limit]}
        if offset + limit < len(rows):
            body["next"] = f"/v1/195900{seen.path.split('195900', 1)[1]}?offset={offset + limit}"
        return Reply(body=body)

    def _listing(self, name: str) -> Any:
        return lambda seen: self._page(name, self.listings[name], seen)

    def _booked(self, seen: Seen) -> Reply:
        rows = self.appointments[seen.query["departmentid"]]
        if int(seen.query.get("offset", 0)) > 0 and self.after_first_page is not None:
            rows = self.after_first_page  # an upstream deletion between two pages
        return self._page("appointments", rows, seen)


@pytest.fixture
def fake(fresh_pg_url: str) -> Iterator[tuple[FakeAthena, Harness]]:
    server = ScriptedServer()
    server.start()
    upgrade(fresh_pg_url)
    settings = settings_from_env(
        {
            "DATABASE_URL": fresh_pg_url,
            "ATHENA_BASE_URL": server.url,
            "ATHENA_CLIENT_ID": "sandbox-client",
            "ATHENA_CLIENT_SECRET": "sandbox-secret",
            "ATHENA_RATE_LIMIT_RPS": "1000",
            "ATHENA_RATE_LIMIT_BURST": "1000",
            "ATHENA_MAX_ATTEMPTS": "1",
            "ATHENA_PAGE_LIMIT": "2",
            # Syncs follow each other within a second here, in one process (no clock skew).
            "SYNC_CLOCK_SKEW_SECONDS": "0",
        }
    )
    harness = Harness(None, fresh_pg_url, settings)  # type: ignore[arg-type]  # no sandbox
    try:
        yield FakeAthena(server), harness
    finally:
        harness.engine.dispose()
        server.stop()


def _sync(h: Harness, resources: str = "all", mode: str = "incremental") -> list[Any]:
    from worker.runtime import open_runtime
    from worker.sync.plan import SyncRequest, expand_resources, run_request

    runtime = open_runtime(h.settings)
    try:
        request = SyncRequest(
            expand_resources([resources]),
            ("195900",),
            mode,
            datetime(2020, 6, 1).date(),
            datetime(2020, 6, 20).date(),
        )
        return run_request(runtime.context(), request)
    finally:
        runtime.close()


def test_real_shapes_land_and_values_the_database_refuses_are_dead_lettered(
    fake: tuple[FakeAthena, Harness],
) -> None:
    api, h = fake
    api.appointments["1"] = [
        appointment("1115851"),
        appointment("1115852", appointmenttype="Any\u000015"),  # Postgres refuses NUL
        appointment("1115853", duration="3000000000"),  # too large for the column
        appointment("1115854", starttime="09:30"),
    ]
    api.appointments["2"] = [appointment("2000001", departmentid="2", starttime="10:00")]
    results = _sync(h)
    assert {r.status for r in results} <= {"succeeded", "partial"}, [r.error for r in results]
    providers = {r["provider_id"]: r for r in h.rows("providers")}
    assert providers["118"]["npi"] == "1245319599"
    assert providers["120"]["first_name"] == "Only" and providers["120"]["npi"] is None
    rows = {r["appointment_id"]: r for r in h.rows("appointments")}
    assert set(rows) == {"1115851", "1115854", "2000001"}
    assert rows["1115851"]["start_at"] == datetime(2020, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 EDT
    assert rows["1115851"]["last_modified_at"] == datetime(2020, 6, 2, 21, 30, 37, tzinfo=UTC)
    assert rows["2000001"]["timezone_name"] == "America/Phoenix"
    assert rows["2000001"]["start_at"] == datetime(2020, 6, 1, 17, 0, tzinfo=UTC)
    letters = {d["record_id"]: d for d in h.rows("dead_letters")}
    assert set(letters) == {"1115852", "1115853"}
    assert "database refused" in letters["1115852"]["error_message"]
    assert "\u0000" not in str(letters["1115852"]["record"])
    assert "out of range" in letters["1115853"]["error_message"]
    summaries = " ".join(r["error_summary"] or "" for r in h.rows("sync_runs"))
    assert "Any" not in summaries and "INSERT" not in summaries


def test_reconcile_does_not_mark_deletions_when_the_listing_moved_under_it(
    fake: tuple[FakeAthena, Harness],
) -> None:
    api, h = fake
    rows = [appointment(f"100{i}") for i in range(1, 7)]
    api.appointments["1"] = rows
    _sync(h)
    assert len(h.rows("appointments", "deleted_at IS NULL")) == 6
    # 1001 is deleted upstream after page 1 was read: every later row shifts back by one.
    api.after_first_page = rows[1:]
    moved = _sync(h, "appointments", "reconcile")
    assert sum(r.counts.deleted for r in moved) == 0, "no marking after an unstable read"
    assert any(r.counts.deletions_deferred for r in moved)
    assert len(h.rows("appointments", "deleted_at IS NULL")) == 6
    api.appointments["1"], api.after_first_page = rows[1:], None
    stable = _sync(h, "appointments", "reconcile")
    assert sum(r.counts.deleted for r in stable) == 1
    assert not any(r.counts.deletions_deferred for r in stable)
    gone = h.rows("appointments", "deleted_at IS NOT NULL")
    assert [r["appointment_id"] for r in gone] == ["1001"]


def test_zone_fallback_needs_the_dst_flag_and_ignores_unknown_names(
    fake: tuple[FakeAthena, Harness],
) -> None:
    api, h = fake
    api.listings["departments"] = [
        {**DEPARTMENT, "timezonename": "Mars/Olympus_Mons"},  # unknown name, offset -5 + DST
        {"departmentid": "2", "name": "NO FLAG", "timezoneoffset": -7},  # Denver or Phoenix?
    ]
    api.appointments["1"] = [appointment("1115851")]
    api.appointments["2"] = [appointment("2000001", departmentid="2")]
    _sync(h)
    rows = {r["appointment_id"]: r for r in h.rows("appointments")}
    assert rows["1115851"]["timezone_name"] == "America/New_York"
    assert "2000001" not in rows, "no guessing between Denver and Phoenix"
    letters = h.rows("dead_letters")
    assert [d["record_id"] for d in letters] == ["2000001"]
    assert "time zone" in letters[0]["error_message"]


def test_the_lastmodified_guard_refuses_older_data_except_inside_the_repeated_hour(
    fake: tuple[FakeAthena, Harness],
) -> None:
    api, h = fake
    api.appointments["1"] = [
        appointment("1", lastmodified="06/02/2020 17:30:37"),
        appointment("2", lastmodified="11/01/2026 01:50:00"),  # first pass of the repeated hour
        appointment("3", lastmodified="11/20/2026 10:00:00"),  # (a stored time in the past)
    ]
    _sync(h, mode="reconcile")
    api.appointments["1"] = [
        appointment("1", lastmodified="06/01/2020 10:00:00", starttime="15:00"),  # older
        appointment("2", lastmodified="11/01/2026 01:10:00", starttime="15:00"),  # second pass?
        appointment("3", lastmodified="11/01/2026 01:30:00", starttime="15:00"),  # older anyway
    ]
    _sync(h, "appointments", mode="reconcile")
    rows = {r["appointment_id"]: r for r in h.rows("appointments")}
    assert rows["1"]["local_time"].strftime("%H:%M") == "08:00", "older data never wins"
    assert rows["2"]["local_time"].strftime("%H:%M") == "15:00", "may be newer: written"
    assert rows["3"]["local_time"].strftime("%H:%M") == "08:00", "older in every reading"


def test_values_a_database_cannot_hold_cost_one_record_or_one_field(
    fake: tuple[FakeAthena, Harness],
) -> None:
    # Served as bare NaN/Infinity and a lone surrogate escape: orjson refuses the bodies, the
    # standard decoder reads them, Postgres could hold none of them.
    api, h = fake
    api.listings["departments"] = [{**DEPARTMENT, "latitude": math.nan}, NO_ZONE_NAME]
    api.listings["providers"] = [
        {**PROVIDER, "displayname": "Shayna \ud800"},
        {**SPARSE_PROVIDER, "providerid": math.inf},  # no usable id: a letter
    ]
    api.appointments["1"] = [
        appointment("1115851", copay=math.inf),
        appointment("1115852", appointmenttype="Any \udc0015"),
        appointment("1115853", duration=-15),
        appointment("1115854"),
    ]
    results = _sync(h)
    assert {r.status for r in results} == {"succeeded", "partial"}, [r.error for r in results]
    department = {r["department_id"]: r for r in h.rows("departments")}["1"]
    assert department["latitude"] is None and department["raw"]["latitude"] == "NaN"
    provider = h.rows("providers")
    assert [(p["provider_id"], p["display_name"]) for p in provider] == [("118", None)]
    assert provider[0]["raw"]["displayname"] == "Shayna \ufffd"
    assert [r["appointment_id"] for r in h.rows("appointments")] == ["1115854"]
    letters = {(d["resource"], d["record_id"]): d for d in h.rows("dead_letters")}
    assert {key: d["error_message"] for key, d in letters.items()} == {
        ("providers", None): "providerid is Infinity, not an id",
        ("appointments", "1115851"): "copay is Infinity, a number JSON cannot hold",
        (
            "appointments",
            "1115852",
        ): "appointmenttype holds a lone surrogate, text UTF-8 cannot encode",
        ("appointments", "1115853"): "duration is negative",
    }
    assert letters[("providers", None)]["record"]["providerid"] == "Infinity"
    assert letters[("appointments", "1115851")]["record"]["copay"] == "Infinity"
    assert letters[("appointments", "1115852")]["record"]["appointmenttype"] == "Any \ufffd15"


def test_departments_are_read_with_their_provider_lists(fake: tuple[FakeAthena, Harness]) -> None:
    api, h = fake
    _sync(h, "departments")
    asked = [s.query for s in api.server.seen if s.path.endswith("/departments")]
    flags = {(q.get("showalldepartments"), q.get("providerlist")) for q in asked}
    # The full listing carries providerlist; the one that only tells hidden departments apart
    # (ids, nothing else) goes without it.
    assert flags == {("true", "true"), (None, None)}
    stored = {r["department_id"]: r["provider_ids"] for r in h.rows("departments")}
    assert stored == {"1": ["68", "69", "75"], "2": None}
