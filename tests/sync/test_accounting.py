"""The accounting rule of multi-department answers, pure: what an answer shows, when the listing
is trusted, which departments are read alone, when the evidence is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.athena.errors import AnswerError
from worker.store.letters import BadRecordLetter
from worker.sync.pages import MappedPage
from worker.sync.read.accounting import (
    EVIDENCE_KEPT,
    EVIDENCE_RENEWED,
    Answer,
    asked,
    left_alone,
    renewed,
    trusted,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
MULTI = "/appointments/booked/multipledepartment"


def page(*departments: str, bad: object = None) -> MappedPage:
    letters = [] if bad is None else [BadRecordLetter(bad, None, "bad")]
    return MappedPage(rows=[{"department_id": d} for d in departments], bad=letters)


def answer(*asked_for: str, shown: tuple[str, ...] = ()) -> Answer:
    found = Answer(asked_for, MULTI, "195900")
    found.see(page(*shown))
    return found


def test_an_answer_notes_the_departments_of_its_records_and_its_bad_records() -> None:
    found = Answer(("1", "2", "3"), MULTI, "195900")
    found.see(page("1", "1"))
    assert not found.several
    found.see(page(bad={"appointmentid": "9", "departmentid": 2, "date": "02/30/2026"}))
    found.see(page(bad={"departmentid": {"id": "3"}}))  # no usable id: nothing learned
    assert found.shown == {"1", "2"} and found.several
    assert found.left_out(trusted=False) == ["3"]
    assert found.left_out(trusted=True) == []


def test_records_of_a_department_not_asked_for_are_a_wrong_answer() -> None:
    found = Answer(("1", "2"), MULTI, "195900")
    with pytest.raises(AnswerError) as raised:
        found.see(page("1", "7"))
    error = raised.value
    assert (error.path, error.practice_id, error.detail) == (MULTI, "195900", "departments 7")
    assert error.error_class == "client_error"
    with pytest.raises(AnswerError):
        found.see(page(bad={"departmentid": "8"}))


def test_a_department_asked_alone_is_always_accounted_for() -> None:
    assert answer("4").left_out(trusted=False) == []


@pytest.mark.parametrize(
    ("verified", "shown", "expected"),
    [
        (None, ("1",), False),  # one department: a server reading one value looks the same
        (None, ("1", "2"), True),  # two: evidence now
        (NOW - EVIDENCE_KEPT + timedelta(seconds=1), (), True),  # recent evidence
        (NOW - EVIDENCE_KEPT, (), False),  # stale
    ],
)
def test_trust_needs_evidence_recent_or_now(verified, shown, expected) -> None:
    answers = [answer("1", "2", "3", shown=shown), answer("4", "5")]
    assert trusted(verified, NOW, answers) is expected


@pytest.mark.parametrize(
    ("verified", "shown", "expected"),
    [
        (None, ("1", "2"), True),
        (NOW - EVIDENCE_RENEWED, ("1", "2"), True),
        (NOW - EVIDENCE_RENEWED + timedelta(seconds=1), ("1", "2"), False),  # not every poll
        (None, ("1",), False),
    ],
)
def test_the_evidence_is_written_when_shown_and_not_fresh(verified, shown, expected) -> None:
    assert renewed(verified, NOW, [answer("1", "2", shown=shown)]) is expected


def test_left_out_departments_are_asked_the_same_question_alone() -> None:
    listings = [
        {"departmentid": ["1", "2", "3"], "startdate": "11/23/2026", "startlastmodified": "x"},
        {"departmentid": ["1", "2", "3"], "startdate": "12/24/2026", "startlastmodified": "x"},
    ]
    answers = [answer(*asked(p), shown=("1",)) for p in listings]
    answers[1].see(page("2", "3"))
    alone = left_alone(listings, answers, trusting=False)
    assert alone == [
        {"departmentid": "2", "startdate": "11/23/2026", "startlastmodified": "x"},
        {"departmentid": "3", "startdate": "11/23/2026", "startlastmodified": "x"},
    ]
    assert left_alone(listings, answers, trusting=True) == []
    assert asked({"departmentid": "5"}) == ("5",)
