"""What a task_failed letter keeps, and what the periodic replay picks: only letters it can
replay, never one whose task killed its process, and never one whose replays keep dying, for
ever. The periodic replay sends units to the workers (``send`` stands in for the broker here:
the units it received are then run the way a worker runs them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from tasks.letters import task_failure
from tests.sync.conftest import PRACTICE, Harness, settings_for
from worker.cli import cli
from worker.deliveries import DeliveriesExhausted
from worker.runtime import Runtime, open_runtime
from worker.store.letters import RETRIABLE_CLASSES, add_request_letter
from worker.store.runs import utcnow
from worker.sync.replay import ReplayOutcome, replay_letters
from worker.units import Unit

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


class Broker:
    """Stands in for Celery's broker: keeps the units the periodic replay sends."""

    def __init__(self) -> None:
        self.units: list[Unit] = []

    def send(self, unit: Unit) -> str:
        self.units.append(unit)
        return f"task-{len(self.units)}"

    def deliver(self, h: Harness) -> list[str]:
        """Run every sent unit as a worker's ``run_unit`` does; their statuses."""
        runtime = open_runtime(h.settings)
        try:
            units, self.units = self.units, []
            return [runtime.runner()(runtime.context(), unit).status for unit in units]
        finally:
            runtime.close()


def _periodic(h: Harness, broker: Broker) -> list[ReplayOutcome]:
    """``replay_letters`` with the arguments ``replay_dead_letters`` passes."""
    runtime = open_runtime(h.settings)
    try:
        return replay_letters(
            runtime.context(),
            all_open=True,
            classes=RETRIABLE_CLASSES,
            max_attempts=h.settings.dead_letter_max_attempts,
            replayable_only=True,
            run=runtime.runner(),
            send=broker.send,
        )
    finally:
        runtime.close()


def _by_hand(h: Harness, *ids: int) -> Any:
    """``athena-sync dead-letters replay ID...`` (in-process: a person waits for the outcome)."""
    env = {
        "DATABASE_URL": h.database_url,
        "ATHENA_BASE_URL": h.server.url,
        "ATHENA_CLIENT_ID": "sandbox-client",
        "ATHENA_CLIENT_SECRET": "sandbox-secret",
        "LOG_LEVEL": "ERROR",
    }
    return CliRunner().invoke(cli, ["dead-letters", "replay", *map(str, ids)], env=env)


def _letter(h: Harness, name: str, args: list[Any], exc: BaseException | None = None) -> int:
    exc = exc or RuntimeError()
    with open_runtime(h.settings, with_client=False).sessions.begin() as session:
        failure = task_failure(name, args, {}, exc, practice=name == PRACTICE_TASK)
        add_request_letter(session, failure, run_id=None, now=utcnow())
    return int(h.rows("dead_letters", f"task_name = '{name}'")[0]["id"])


def _letters(h: Harness) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in h.rows("dead_letters")}


def test_a_letter_with_nothing_to_replay_is_left_to_a_person(pg: Harness) -> None:
    h, broker = pg, Broker()
    stuck = _letter(h, "tasks.sync_tasks.sync_reference", [])
    replayable = _letter(h, PRACTICE_TASK, [PRACTICE, ["providers"]])
    for _ in range(2):  # two periodic runs: the first resolves one, neither touches the other
        outcomes = _periodic(h, broker)
        assert stuck not in [o.letter_id for o in outcomes]
    letters = _letters(h)
    assert (letters[stuck]["state"], letters[stuck]["attempts"]) == ("open", 1)
    assert letters[replayable]["state"] == "resolved"
    assert broker.deliver(h) == ["succeeded"]
    assert len(h.rows("providers")) == 8
    by_hand = _by_hand(h, stuck)
    assert by_hand.exit_code == 0 and "no unit of work stored" in by_hand.output


def test_the_periodic_replay_sends_a_unit_and_its_success_resolves_the_letter(
    pg: Harness,
) -> None:
    h, broker = pg, Broker()
    letter = _letter(h, "tasks.sync_tasks.run_unit", [UNIT])
    outcomes = _periodic(h, broker)
    assert [(o.letter_id, o.result, o.detail) for o in outcomes] == [
        (letter, "sent", "task task-1")
    ]
    assert broker.units == [Unit("providers", PRACTICE)]
    assert h.rows("sync_runs") == [], "nothing ran in the replay's own process"
    assert _letters(h)[letter]["state"] == "replayed"  # in flight until the unit reports back

    assert broker.deliver(h) == ["succeeded"]  # a worker runs it
    row = _letters(h)[letter]
    assert (row["state"], row["attempts"]) == ("resolved", 1)
    assert row["resolution_note"].startswith("unit succeeded in run")
    assert len(h.rows("providers")) == 8
    assert _periodic(h, broker) == [] and broker.units == []


def test_a_task_refused_for_killing_its_process_waits_for_a_person(pg: Harness) -> None:
    h, broker = pg, Broker()
    died = DeliveriesExhausted("t-1", 2)
    letter = _letter(h, "tasks.sync_tasks.run_unit", [UNIT], died)
    assert _letters(h)[letter]["task_args"] == {"unit": UNIT, "process_deaths": 2}
    for _ in range(2):
        assert _periodic(h, broker) == []
    assert broker.units == [] and h.rows("sync_runs") == []
    assert (_letters(h)[letter]["state"], _letters(h)[letter]["attempts"]) == ("open", 1)

    by_hand = _by_hand(h, letter)  # a person decided to try it again, here
    assert by_hand.exit_code == 0, by_hand.output
    assert _letters(h)[letter]["state"] == "resolved"
    assert len(h.rows("providers")) == 8


def test_the_same_refusal_keeps_one_letter_whatever_stopped_the_task_before(pg: Harness) -> None:
    h = pg
    first = _letter(h, "tasks.sync_tasks.run_unit", [UNIT])
    again = _letter(h, "tasks.sync_tasks.run_unit", [UNIT], DeliveriesExhausted("t-2", 3))
    assert first == again
    row = _letters(h)[first]
    assert (row["attempts"], row["task_args"]) == (2, {"unit": UNIT, "process_deaths": 3})


def test_a_replay_that_never_reported_back_counts_as_an_attempt(pg: Harness) -> None:
    h, broker = pg, Broker()
    letter = _letter(h, "tasks.sync_tasks.run_unit", [UNIT])
    limit = h.settings.dead_letter_max_attempts
    with h.engine.begin() as conn:  # the last replay's process died while the unit ran
        conn.exec_driver_sql(
            "UPDATE dead_letters SET state = 'replayed', attempts = %(n)s WHERE id = %(id)s",
            {"n": limit - 2, "id": letter},
        )
    outcomes = _periodic(h, broker)  # counted, and sent again
    assert [(o.letter_id, o.result) for o in outcomes] == [(letter, "sent")]
    assert h.rows("dead_letters", f"id = {letter}")[0]["attempts"] == limit - 1
    h.server.set_faults(latency_ms=0, error_rate=1.0)
    assert broker.deliver(h) == ["failed"]  # the sent unit fails (its own letter: retries)
    assert _letters(h)[letter]["state"] == "replayed"
    # Counted as a failed attempt and sent again (with the unit's own retries letter).
    assert {o.letter_id: o.result for o in _periodic(h, broker)}[letter] == "sent"
    row = h.rows("dead_letters", f"id = {letter}")[0]
    assert row["attempts"] == limit
    assert row["error_message"].startswith("its last replay did not succeed")
    broker.units.clear()
    again = [o.letter_id for o in _periodic(h, broker)]
    assert letter not in again, "a letter out of attempts is left alone"


@pytest.fixture
def leased(pg: Harness, redis_url: str, redis_prefix: str) -> Iterator[Runtime]:
    """A runtime with Redis: units run under their leases, as the CLI and the workers run them."""
    settings = settings_for(
        pg.server, pg.database_url, REDIS_URL=redis_url, REDIS_KEY_PREFIX=redis_prefix
    )
    runtime = open_runtime(settings)
    try:
        yield runtime
    finally:
        runtime.close()


def test_the_periodic_replay_re_plans_a_practice_and_sends_its_units(
    pg: Harness, leased: Runtime
) -> None:
    h, broker = pg, Broker()
    letter = _letter(h, PRACTICE_TASK, [PRACTICE, ["providers", "appointments"]])
    ctx = leased.context(task_id="the-replay")
    outcomes = replay_letters(
        ctx, all_open=True, replayable_only=True, run=leased.runner(), send=broker.send
    )
    assert [(o.letter_id, o.result) for o in outcomes] == [(letter, "resolved")]
    # Departments ran here (the units by department are planned from them); the rest was sent.
    ran = h.rows("sync_runs")
    assert [(r["resource"], r["status"], r["task_id"]) for r in ran] == [
        ("departments", "succeeded", "the-replay")
    ]
    departments = sorted(r["department_id"] for r in h.rows("departments"))
    sent = sorted((u.resource, u.department_id or "") for u in broker.units)
    assert sent == [("appointments", d) for d in departments] + [("providers", "")]
    row = _letters(h)[letter]
    assert row["resolution_note"].endswith(f"re-planned: {len(sent)} unit(s) sent to workers")


def test_an_in_process_practice_replay_counts_a_unit_another_trigger_runs_as_covered(
    pg: Harness, leased: Runtime
) -> None:
    h = pg
    h.sync("departments")
    department = sorted(r["department_id"] for r in h.rows("departments"))[0]
    busy = Unit("appointments", PRACTICE, "incremental", department_id=department)
    held = leased.leases.acquire(busy.key, owner="another-trigger")  # running it right now
    assert held is not None
    letter = _letter(h, PRACTICE_TASK, [PRACTICE, ["appointments"]])

    outcomes = replay_letters(leased.context(), ids=[letter], run=leased.runner())

    assert [(o.letter_id, o.result) for o in outcomes] == [(letter, "resolved")]
    statuses = {r["department_id"]: r["status"] for r in h.rows("sync_runs", "task_id IS NULL")}
    assert statuses.pop(department) == "skipped"
    assert set(statuses.values()) == {"succeeded"}
    assert "1 covered by the trigger holding their lease" in _letters(h)[letter]["resolution_note"]
