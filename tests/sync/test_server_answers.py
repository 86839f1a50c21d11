"""Odd answers a real gateway sends: 200s that are not the listing, a 403 on one endpoint, the
legacy gateway's 403 throttle. Each fails (or is retried) at the right depth, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from sandbox import FaultConfig, SandboxServer
from tests.athena.conftest import debug_logs as debug_logs
from tests.sync.conftest import PRACTICE, _harness, settings_for
from tests.sync.test_full_sync import assert_matches_truth
from worker.leases import Leases
from worker.runtime import open_runtime
from worker.sync.leased import leased_runner
from worker.sync.plan import SyncRequest, expand_resources, fan_out
from worker.units import Unit

Sandbox = Callable[..., SandboxServer]


def _retried(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "athena.request_retried"]


@pytest.mark.usefixtures("debug_logs")
def test_listing_200s_that_are_not_the_envelope_are_sent_again_and_every_page_lands(
    make_sandbox: Sandbox, fresh_pg_url: str
) -> None:
    server = make_sandbox(faults=FaultConfig(envelope_error_rate=0.25, seed=5))
    for h in _harness(server, fresh_pg_url):
        settings = settings_for(
            server, fresh_pg_url, ATHENA_PAGE_LIMIT="40", ATHENA_MAX_ATTEMPTS="6"
        )
        with capture_logs() as logs:
            results = h.sync(settings=settings)
        assert {r.status for r in results} == {"succeeded"}
        assert_matches_truth(h)
        assert h.rows("dead_letters") == []
        retried = _retried(logs)
        assert retried and {e["status"] for e in retried} == {200}
        reasons = " | ".join(e["reason"] for e in retried)
        for kind in ("collection", "non-JSON (text/html)", "empty body", "got list"):
            assert kind in reasons, kind


@pytest.mark.parametrize("status", [403, 401])
def test_a_refused_endpoint_fails_its_unit_and_the_practice_syncs_on(
    make_sandbox: Sandbox, fresh_pg_url: str, status: int
) -> None:
    """A 403, or a 401 "Incorrect permissions." while ``/ping`` answers (production's answer for
    an endpoint not enabled for the key may be either), fails only that endpoint's units."""
    server = make_sandbox(forbidden_endpoints=(f"{PRACTICE}:/appointmenttypes={status}",))
    for h in _harness(server, fresh_pg_url):
        results = h.sync()
        failed = [r for r in results if r.status != "succeeded"]
        assert [(r.unit.resource, r.status, r.error_class) for r in failed] == [
            ("appointment-types", "failed", "auth")
        ]
        assert {r.unit.resource for r in results if r.status == "succeeded"} == {
            "departments",
            "providers",
            "appointments",
        }
        truth = server.truth(PRACTICE)
        stored = {r["appointment_id"] for r in h.rows("appointments")}
        assert stored == {a["appointmentid"] for a in truth["appointments"]}
        assert len(h.rows("providers")) == len(truth["providers"])
        assert len(h.rows("departments")) == len(truth["departments"])
        assert h.rows("appointment_types") == []
        [letter] = h.rows("dead_letters")
        assert (letter["kind"], letter["error_class"], letter["http_status"]) == (
            "request",
            "auth",
            status,
        )
        assert (letter["resource"], letter["path"]) == ("appointment-types", "/appointmenttypes")
        assert "/appointmenttypes" in letter["error_message"]
        assert letter["task_args"]["resource"] == "appointment-types"


def test_a_celery_fan_out_goes_on_past_a_403_on_departments(
    make_sandbox: Sandbox, fresh_pg_url: str, redis_url: str, redis_prefix: str
) -> None:
    server = make_sandbox(forbidden_endpoints=(f"{PRACTICE}:/departments",))
    for h in _harness(server, fresh_pg_url):
        runtime = open_runtime(h.settings)
        connection = redis.Redis.from_url(redis_url)
        sent: list[Unit] = []
        try:
            leases = Leases(connection, prefix=redis_prefix, ttl=30)
            request = SyncRequest(expand_resources(["all"]), (PRACTICE,))
            plan = fan_out(
                runtime.context(),
                request,
                PRACTICE,
                run=leased_runner(leases),
                send=_collect(sent),
                retry_later=True,
            )
        finally:
            runtime.close()
            connection.close()
        assert [(r.unit.resource, r.status, r.error_class) for r in plan.ran] == [
            ("departments", "failed", "auth")
        ]
        assert [u.resource for u in sent] == ["providers", "appointment-types"]


def _collect(sent: list[Unit]) -> Callable[[Unit], str]:
    def send(unit: Unit) -> str:
        sent.append(unit)
        return f"task-{len(sent)}"

    return send


@pytest.mark.usefixtures("debug_logs")
def test_a_legacy_over_qps_403_is_waited_out_and_the_data_lands(
    make_sandbox: Sandbox, fresh_pg_url: str
) -> None:
    server = make_sandbox(faults=FaultConfig(legacy_throttle_rate=0.3, seed=2))
    for h in _harness(server, fresh_pg_url):
        settings = settings_for(server, fresh_pg_url, ATHENA_MAX_ATTEMPTS="6")
        with capture_logs() as logs:
            results = h.sync(settings=settings)
        assert {r.status for r in results} == {"succeeded"}
        assert_matches_truth(h)
        assert h.rows("dead_letters") == []
        statuses = server.stats()["practices"][PRACTICE]
        assert statuses["403"] == len(_retried(logs)) > 0
        assert {e["status"] for e in _retried(logs)} == {403}
