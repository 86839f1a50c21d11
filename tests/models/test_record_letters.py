"""resolve_record_letters on real Postgres and SQLite: a clean copy settles a bad record's letter
only when it is at least as new as the copy the letter holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from models import DeadLetter
from worker.store.letters import BadRecordLetter, add_record_letters, resolve_record_letters

NOON = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)  # 12:00:00 Eastern (daylight time)
NOW = datetime(2026, 6, 2, tzinfo=UTC)


@pytest.fixture
def session(engine):
    with Session(engine) as s:
        yield s


def letter(session: Session, ident: str, lastmodified: object) -> None:
    record = {"appointmentid": ident, "starttime": "25:61", "lastmodified": lastmodified}
    add_record_letters(
        session,
        [BadRecordLetter(record, ident, "starttime: not a time", "starttime")],
        resource="appointments",
        practice_id="195900",
        department_id=None,
        path="/appointments/changed",
        run_id=None,
        now=NOW,
    )


def states(session: Session) -> dict[str | None, str]:
    session.expire_all()
    return {d.record_id: d.state for d in session.query(DeadLetter)}


def test_a_clean_copy_settles_only_a_letter_holding_no_newer_copy(session: Session) -> None:
    letter(session, "older-row", "06/01/2026 12:00:01")  # the bad copy is a second newer
    letter(session, "same-time", "06/01/2026 12:00:00")
    letter(session, "newer-row", "06/01/2026 11:59:59")
    letter(session, "untimed-row", "06/01/2026 12:00:00")
    letter(session, "untimed-copy", None)
    letter(session, "unparsable-copy", "12/31/9999 99:99:99")
    session.commit()
    settled = resolve_record_letters(
        session,
        resource="appointments",
        practice_id="195900",
        landed={
            "older-row": NOON,
            "same-time": NOON,
            "newer-row": NOON,
            "untimed-row": None,
            "untimed-copy": None,
            "unparsable-copy": NOON,
        },
        guard_field="lastmodified",
        now=NOW,
    )
    session.commit()
    assert settled == 4
    assert states(session) == {
        "older-row": "open",
        "same-time": "resolved",
        "newer-row": "resolved",
        "untimed-row": "open",  # a row without a time cannot be shown at least as new
        "untimed-copy": "resolved",
        "unparsable-copy": "resolved",
    }


def test_without_a_guard_any_clean_copy_settles(session: Session) -> None:
    letter(session, "7", "06/01/2026 12:00:01")
    session.commit()
    landed = {"7": None}
    assert (
        resolve_record_letters(
            session, resource="appointments", practice_id="195900", landed=landed, now=NOW
        )
        == 1
    )
    session.commit()
    assert states(session) == {"7": "resolved"}
