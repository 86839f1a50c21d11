"""The pager value: what to ask next, when to stop, and when the server is looping."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from worker.athena.errors import PagingError
from worker.athena.paging import Pager, next_offset_of, totalcount_of


def walk(pager: Pager, pages: Sequence[tuple[int, int | None, str | None]]) -> list[int]:
    """Feed (returned, totalcount, next) per page; return the offsets asked for."""
    offsets = []
    current: Pager | None = pager
    for returned, total, nxt in pages:
        assert current is not None, "pager stopped early"
        offsets.append(current.offset)
        current = current.after(returned=returned, totalcount=total, next_link=nxt)
    assert current is None, "pager did not stop"
    return offsets


def test_exact_multiple_of_the_limit_stops_on_totalcount_without_an_empty_page() -> None:
    assert walk(Pager(limit=10), [(10, 20, "/v1/1/x?offset=10"), (10, 20, None)]) == [0, 10]


def test_empty_listing_is_one_last_page() -> None:
    assert walk(Pager(limit=10), [(0, 0, None)]) == [0]


def test_short_page_without_totalcount_or_next_is_last() -> None:
    assert walk(Pager(limit=10), [(10, None, None), (3, None, None)]) == [0, 10]


def test_full_page_without_totalcount_or_next_asks_once_more() -> None:
    assert walk(Pager(limit=10), [(10, None, None), (0, None, None)]) == [0, 10]


def test_server_clamping_the_limit_is_followed_by_totalcount_and_next() -> None:
    link = "/v1/195900/appointments/booked?DEPARTMENTID=1&offset={}"
    pages = [(1000, 2031, link.format(1000)), (1000, 2031, link.format(2000)), (31, 2031, None)]
    assert walk(Pager(limit=5000), pages) == [0, 1000, 2000]


def test_next_link_offset_is_trusted_when_present() -> None:
    pager = Pager(limit=10).after(returned=10, totalcount=None, next_link="/v1/1/x?OFFSET=10")
    assert pager is not None and pager.offset == 10


def test_next_link_that_does_not_advance_raises() -> None:
    pager = Pager(limit=10, offset=10, path="/departments", practice_id="195900")
    with pytest.raises(PagingError, match="does not advance past 10") as caught:
        pager.after(returned=10, totalcount=100, next_link="/v1/195900/departments?offset=10")
    assert caught.value.path == "/departments"
    assert caught.value.practice_id == "195900"


def test_more_rows_than_totalcount_raises() -> None:
    with pytest.raises(PagingError, match="more than its totalcount 15"):
        Pager(limit=10, offset=10).after(returned=10, totalcount=15)


def test_the_same_page_twice_raises() -> None:
    pager = Pager(limit=2).after(returned=2, totalcount=None, fingerprint="abc")
    assert pager is not None
    with pytest.raises(PagingError, match="same page again"):
        pager.after(returned=2, totalcount=None, fingerprint="abc")


@pytest.mark.parametrize("limit", [0, 5001])
def test_limit_must_be_within_the_api_range(limit: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 5000"):
        Pager(limit=limit)


def test_query_always_sends_limit_and_offset() -> None:
    assert Pager(limit=7, offset=14).query() == {"limit": 7, "offset": 14}


@pytest.mark.parametrize(
    ("link", "offset"),
    [
        (
            "/v1/195900/appointments/booked?DEPARTMENTID=1&STARTDATE=01%2F01%2F2018&offset=1000",
            1000,
        ),
        ("https://host/v1/1/x?OFFSET=5", 5),
        ("/v1/1/x?limit=5", None),
        ("/v1/1/x?offset=abc", None),
        (None, None),
        (42, None),
    ],
)
def test_next_offset_of(link: object, offset: int | None) -> None:
    assert next_offset_of(link) == offset


@pytest.mark.parametrize(
    ("body", "total"),
    [({"totalcount": 3}, 3), ({"totalcount": "12"}, 12), ({}, None), ({"totalcount": True}, None)],
)
def test_totalcount_of(body: dict[str, object], total: int | None) -> None:
    assert totalcount_of(body) == total
