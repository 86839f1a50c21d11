"""newest_only: one row per id in a page, chosen as the upsert's guard would (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.sync.pages import MappedPage, newest_only

T1 = datetime(2026, 6, 1, 12, tzinfo=UTC)
T2 = datetime(2026, 6, 1, 13, tzinfo=UTC)


def page(*rows: tuple[str, datetime | None, str]) -> MappedPage:
    mapped = MappedPage()
    for ident, stamp, status in rows:
        row: dict[str, Any] = {"appointment_id": ident, "last_modified_at": stamp, "s": status}
        mapped.rows.append(row)
        mapped.sources.append({"appointmentid": ident})
        mapped.good_ids.append(ident)
    return mapped


def chosen(mapped: MappedPage) -> list[tuple[str, str]]:
    kept = newest_only(mapped, key="appointment_id", guard="last_modified_at")
    return [(row["appointment_id"], row["s"]) for row in kept.rows]


def test_the_newest_copy_is_kept_whatever_the_order() -> None:
    assert chosen(page(("1", T2, "new"), ("1", T1, "old"))) == [("1", "new")]
    assert chosen(page(("1", T1, "old"), ("1", T2, "new"))) == [("1", "new")]
    assert chosen(page(("1", T1, "a"), ("1", T1, "b"))) == [("1", "b")]  # a tie: the later


def test_a_copy_without_a_time_never_replaces_one_with_a_time() -> None:
    assert chosen(page(("1", T1, "timed"), ("1", None, "untimed"))) == [("1", "timed")]
    assert chosen(page(("1", None, "untimed"), ("1", T1, "timed"))) == [("1", "timed")]
    assert chosen(page(("1", None, "a"), ("1", None, "b"))) == [("1", "b")]
