"""A plan with no appointment unit for a practice that has departments upstream is never a
success: here every department the API lists is refused (dead-lettered), so none is stored."""

from __future__ import annotations

from typing import Any

from tests.athena.conftest import Reply, ScriptedServer, Seen
from tests.athena.conftest import scripted as scripted
from worker import metrics
from worker.db import upgrade
from worker.runtime import open_runtime
from worker.settings import settings_from_env
from worker.sync.plan import SyncRequest, expand_resources, run_request

PRACTICE = "195900"


def listing(collection: str, records: list[Any]) -> Any:
    def answer(_: Seen) -> Reply:
        return Reply(body={"totalcount": len(records), collection: records})

    return answer


def test_departments_all_refused_fail_the_appointments_plan(
    scripted: ScriptedServer, fresh_pg_url: str
) -> None:
    upgrade(fresh_pg_url)
    scripted.api("/departments", listing("departments", [{"name": "no id"}, {"name": "none"}]))
    scripted.api("/providers", listing("providers", []))
    scripted.api("/appointmenttypes", listing("appointmenttypes", []))
    settings = settings_from_env(
        {
            "DATABASE_URL": fresh_pg_url,
            "ATHENA_BASE_URL": scripted.url,
            "ATHENA_CLIENT_ID": "sandbox-client",
            "ATHENA_CLIENT_SECRET": "sandbox-secret",
            "ATHENA_PRACTICE_IDS": PRACTICE,
        }
    )
    runtime = open_runtime(settings)
    recorded: list[tuple[str, str, str]] = []

    class Sink:
        def __getattr__(self, _name: str) -> Any:
            return lambda *args, **kwargs: None

        def unit(self, resource: str, mode: str, status: str, *_: Any) -> None:
            recorded.append((resource, mode, status))

    metrics.install(Sink())  # type: ignore[arg-type]
    try:
        request = SyncRequest(expand_resources(["all"]), (PRACTICE,))
        results = run_request(runtime.context(), request)
    finally:
        metrics.install(None)
        runtime.close()
    # The failure alerts count it as they count a unit that ran and failed.
    assert ("appointments", "incremental", "failed") in recorded
    by_resource = {r.unit.resource: r for r in results}
    assert by_resource["departments"].status == "partial"
    assert by_resource["departments"].counts.dead_lettered == 2
    appointments = by_resource["appointments"]
    assert appointments.status == "failed"
    assert "all 2 departments read were refused" in (appointments.error or "")
