"""Records with values a database cannot hold (NaN, Infinity) or that cannot be true (a negative
duration) cost one dead letter each, never their unit: the sandbox over HTTP, Postgres and
SQLite."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from sandbox import FaultConfig, SandboxServer
from sandbox.appointments import MALFORMED_KINDS
from tests.sync.conftest import PRACTICE, Harness, _harness
from worker.athena.responses import NonFinite
from worker.store.letters import BadRecordLetter, add_record_letters

# One of each kind of broken record, the NaN, Infinity and negative-duration ones included.
FAULTS = FaultConfig(malformed_appointments=len(MALFORMED_KINDS), seed=3)


@pytest.fixture(params=["postgres", "sqlite"])
def faulty(
    request: pytest.FixtureRequest, make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> Iterator[Harness]:
    """The sandbox serving every kind of broken appointment, and a fresh migrated database."""
    server = make_sandbox(faults=FAULTS)
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'athena_sync.db'}"
    yield from _harness(server, url)


def _json(value: Any) -> Any:
    """SQLite hands JSON columns back as text through a raw query."""
    return json.loads(value) if isinstance(value, str) else value


def _letters(h: Harness) -> dict[str, dict[str, Any]]:
    """Record letters by the sandbox's reason for breaking the record (its id tells which)."""
    kinds = {
        str(m["record"].get("appointmentid")): m["reason"]
        for m in h.server.truth(PRACTICE)["malformed"]
    }
    letters = {}
    for letter in h.rows("dead_letters"):
        letter["record"] = _json(letter["record"])
        letters[kinds.get(str(letter["record"].get("appointmentid")), "?")] = letter
    return letters


def _landed(h: Harness) -> set[str]:
    return {r["appointment_id"] for r in h.rows("appointments", "deleted_at IS NULL")}


def _assert_one_letter_per_broken_record(h: Harness, attempts: int) -> dict[str, dict[str, Any]]:
    truth = h.server.truth(PRACTICE)
    assert _landed(h) == {a["appointmentid"] for a in truth["appointments"]}, "the rest lands"
    letters = _letters(h)
    assert set(letters) == set(MALFORMED_KINDS), "one letter per broken record, nothing else"
    for letter in letters.values():
        assert (letter["kind"], letter["error_class"]) == ("record", "bad_record")
        assert (letter["state"], letter["attempts"]) == ("open", attempts)
    return letters


def test_nan_and_infinity_cost_one_record_each_not_the_unit(faulty: Harness) -> None:
    h = faulty
    # A re-run (reconcile: it reads every record again) meets them again and behaves the same.
    for attempt, mode in enumerate(("incremental", "reconcile"), start=1):
        results = h.sync(mode=mode)
        assert {r.status for r in results} == {"succeeded", "partial"}, [r.error for r in results]
        letters = _assert_one_letter_per_broken_record(h, attempts=attempt)
        nan, infinity = letters["duration is NaN"], letters["copay is Infinity"]
        assert nan["error_message"] == "duration is NaN, a number JSON cannot hold"
        assert infinity["error_message"] == "copay is Infinity, a number JSON cannot hold"
        # The stored copies are JSON (the non-finite numbers spelled as text), all else as served.
        assert nan["record"]["duration"] == "NaN"
        assert infinity["record"]["copay"] == "Infinity"
        assert nan["record_id"] == nan["record"]["appointmentid"]
        served = {m["reason"]: m["record"] for m in h.server.truth(PRACTICE)["malformed"]}
        assert {k: v for k, v in infinity["record"].items() if k != "copay"} == {
            k: v for k, v in served["copay is Infinity"].items() if k != "copay"
        }
    assert not h.rows("dead_letters", "kind = 'request'"), "no unit failed"


def test_a_negative_duration_is_a_letter_and_the_rest_lands(faulty: Harness) -> None:
    h = faulty
    results = h.sync()
    assert "failed" not in {r.status for r in results}
    letters = _assert_one_letter_per_broken_record(h, attempts=1)
    negative = letters["negative duration"]
    assert negative["error_message"] == "duration is negative"
    assert negative["record"]["duration"] == -15
    assert negative["record_id"] not in _landed(h)
    partial = [r for r in results if r.status == "partial"]
    assert sum(r.counts.dead_lettered for r in partial) == len(MALFORMED_KINDS)


def test_a_letter_is_storable_whatever_its_record_holds(pg: Harness) -> None:
    # The last line of defence, for a record refused by the database after mapping (the page's
    # refused-row fallback): its letter must never be refused in turn.
    record = {
        "appointmentid": "1\x00",
        "duration": NonFinite("nan"),
        "copay": float("inf"),
        "notes": [{"text": "x\ud800y", "n": NonFinite("-inf")}],
        "k\udc00": "v",
    }
    with Session(pg.engine) as session, session.begin():
        add_record_letters(
            session,
            [BadRecordLetter(record, "1\x00", "the database refused the record")],
            resource="appointments",
            practice_id=PRACTICE,
            department_id="1",
            path=None,
            run_id=None,
            now=datetime.now(UTC),
        )
    [letter] = pg.rows("dead_letters")
    assert letter["record"] == {
        "appointmentid": "1\ufffd",
        "duration": "NaN",
        "copay": "Infinity",
        "notes": [{"text": "x\ufffdy", "n": "-Infinity"}],
        "k\ufffd": "v",
    }
    assert letter["record_id"] == "1\ufffd"
