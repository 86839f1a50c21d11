"""An empty complete read would mark every live row in scope deleted. A gateway answering a bare
``{"totalcount": 0}`` for a moment must not wipe a practice: the listing is read once more first,
and only an empty answer again marks the rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.athena.conftest import Reply, ScriptedServer, Seen
from tests.athena.conftest import scripted as scripted
from worker.db import upgrade
from worker.runtime import open_runtime
from worker.settings import Settings, settings_from_env
from worker.store.runs import RunResult
from worker.sync.plan import SyncRequest, run_request

PRACTICE = "195900"
PROVIDERS = [{"providerid": i, "lastname": f"Doe {i}"} for i in (1, 2, 3)]


def answers(*bodies: Any) -> Callable[[Seen], Reply]:
    """Answer with each body in turn, the last one for ever after."""
    queue = list(bodies)

    def answer(_: Seen) -> Reply:
        return Reply(body=queue.pop(0) if len(queue) > 1 else queue[0])

    return answer


def sync(settings: Settings) -> RunResult:
    runtime = open_runtime(settings)
    try:
        [result] = run_request(runtime.context(), SyncRequest(("providers",), (PRACTICE,)))
    finally:
        runtime.close()
    return result


@pytest.fixture
def settings(scripted: ScriptedServer, fresh_pg_url: str) -> Settings:
    upgrade(fresh_pg_url)
    return settings_from_env(
        {
            "DATABASE_URL": fresh_pg_url,
            "ATHENA_BASE_URL": scripted.url,
            "ATHENA_CLIENT_ID": "sandbox-client",
            "ATHENA_CLIENT_SECRET": "sandbox-secret",
            "SYNC_CLOCK_SKEW_SECONDS": "0",
        }
    )


FULL = {"totalcount": 3, "providers": PROVIDERS}
EMPTY = {"totalcount": 0}


def test_a_momentary_empty_listing_marks_nothing(scripted: ScriptedServer, settings: Settings):
    scripted.api("/providers", answers(FULL, EMPTY, FULL))
    assert sync(settings).counts.inserted == 3
    second = sync(settings)
    assert (second.status, second.counts.deleted, second.counts.deletions_deferred) == (
        "succeeded",
        0,
        True,
    )
    assert len(scripted.calls(f"/v1/{PRACTICE}/providers")) == 3  # the empty read, read again


def test_an_empty_listing_read_twice_marks_the_rows(scripted: ScriptedServer, settings: Settings):
    scripted.api("/providers", answers(FULL, EMPTY))
    sync(settings)
    second = sync(settings)
    assert (second.counts.deleted, second.counts.deletions_deferred) == (3, False)


def test_an_empty_listing_of_an_empty_scope_costs_no_second_read(
    scripted: ScriptedServer, settings: Settings
):
    scripted.api("/providers", answers(EMPTY))
    sync(settings)
    assert len(scripted.calls(f"/v1/{PRACTICE}/providers")) == 1
