"""What a task_failed letter keeps, and what the periodic replay picks: only letters it can
replay, and never one whose replays keep dying, for ever."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from tasks.letters import task_failure
from tests.sync.conftest import PRACTICE, Harness
from worker.cli import cli
from worker.runtime import open_runtime
from worker.store.letters import RETRIABLE_CLASSES, add_request_letter
from worker.store.runs import utcnow
from worker.sync.replay import ReplayOutcome, replay_letters

PRACTICE_TASK = "tasks.sync_tasks.sync_practice"
REQUEST = {
    "resources": ["providers", "appointments"],
    "practice_id": PRACTICE,
    "mode": "reconcile",
    "start": "2026-10-01",
    "end": "2026-10-31",
}


UNIT = {"resource": "providers", "practice_id": PRACTICE}
POSITIONAL = [PRACTICE, ["providers", "appointments"], "reconcile", "2026-10-01", "2026-10-31"]
DEFAULTS = {
    "resources": ["providers"],
    "practice_id": PRACTICE,
    "mode": "incremental",
    "start": None,
    "end": None,
}
NOT_A_REQUEST = [PRACTICE, ["patients"]]


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "stored"),
    [
        (PRACTICE_TASK, POSITIONAL, {}, {"request": REQUEST}),
        (PRACTICE_TASK, [], {**REQUEST, "run_group": "g"}, {"request": REQUEST}),
        (PRACTICE_TASK, [PRACTICE, ["providers"]], {}, {"request": DEFAULTS}),
        (PRACTICE_TASK, NOT_A_REQUEST, {}, {"args": NOT_A_REQUEST, "kwargs": {}}),
        ("tasks.sync_tasks.run_unit", [UNIT], {}, {"unit": UNIT}),
        ("tasks.sync_tasks.sync_reference", [], {}, {"args": [], "kwargs": {}}),
    ],
)
def test_a_task_failed_letter_keeps_a_unit_or_a_practice_request(
    name: str, args: list[Any], kwargs: dict[str, Any], stored: dict[str, Any]
) -> None:
    failure = task_failure(name, args, kwargs, RuntimeError("boom"), practice=name == PRACTICE_TASK)
    assert failure.task_args == stored
    assert failure.error_class == "task_failed" and failure.task_name == name


def _periodic(h: Harness) -> list[ReplayOutcome]:
    """``replay_letters`` with the arguments ``replay_dead_letters`` passes."""
    runtime = open_runtime(h.settings)
    try:
        return replay_letters(
            runtime.context(),
            all_open=True,
            classes=RETRIABLE_CLASSES,
            max_attempts=h.settings.dead_letter_max_attempts,
            replayable_only=True,
        )
    finally:
        runtime.close()


def _letter(h: Harness, name: str, args: list[Any]) -> int:
    with open_runtime(h.settings, with_client=False).sessions.begin() as session:
        failure = task_failure(name, args, {}, RuntimeError(), practice=name == PRACTICE_TASK)
        add_request_letter(session, failure, run_id=None, now=utcnow())
    return int(h.rows("dead_letters", f"task_name = '{name}'")[0]["id"])


def test_a_letter_with_nothing_to_replay_is_left_to_a_person(pg: Harness) -> None:
    h = pg
    stuck = _letter(h, "tasks.sync_tasks.sync_reference", [])
    replayable = _letter(h, PRACTICE_TASK, [PRACTICE, ["providers"]])
    for _ in range(2):  # two periodic runs: the first resolves one, neither touches the other
        outcomes = _periodic(h)
        assert stuck not in [o.letter_id for o in outcomes]
    letters = {r["id"]: r for r in h.rows("dead_letters")}
    assert (letters[stuck]["state"], letters[stuck]["attempts"]) == ("open", 1)
    assert letters[replayable]["state"] == "resolved"
    assert len(h.rows("providers")) == 8
    env = {
        "DATABASE_URL": h.database_url,
        "ATHENA_BASE_URL": h.server.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": "sandbox-secret",
        "LOG_LEVEL": "ERROR",
    }
    by_hand = CliRunner().invoke(cli, ["dead-letters", "replay", str(stuck)], env=env)
    assert by_hand.exit_code == 0 and "no unit of work stored" in by_hand.output


def test_a_replay_that_never_reported_back_counts_as_an_attempt(pg: Harness) -> None:
    h = pg
    letter = _letter(h, "tasks.sync_tasks.run_unit", [UNIT])
    limit = h.settings.dead_letter_max_attempts
    with h.engine.begin() as conn:  # the last replay's process died while the unit ran
        conn.exec_driver_sql(
            "UPDATE dead_letters SET state = 'replayed', attempts = %(n)s WHERE id = %(id)s",
            {"n": limit - 2, "id": letter},
        )
    h.server.set_faults(latency_ms=0, error_rate=1.0)  # and this replay fails in-process
    outcomes = _periodic(h)
    assert [(o.letter_id, o.result) for o in outcomes] == [(letter, "failed")]
    assert h.rows("dead_letters", f"id = {letter}")[0]["attempts"] == limit
    again = [o.letter_id for o in _periodic(h)]  # (the failed run left its own letter)
    assert letter not in again, "a letter out of attempts is left alone"
