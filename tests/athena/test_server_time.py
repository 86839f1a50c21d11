"""The API's clock as the client reads it: the ``Date`` header, parsed defensively."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox import SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox
from tests.athena.conftest import client_settings, no_sleep
from worker.athena import AthenaClient, MemoryTokenCache
from worker.athena.transport import build_session, server_time

NOON = datetime(2026, 11, 29, 17, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Sun, 29 Nov 2026 17:06:00 GMT", NOON),  # RFC 7231 IMF-fixdate
        ("Sunday, 29-Nov-26 17:06:00 GMT", NOON),  # obsolete RFC 850
        ("Sun Nov 29 17:06:00 2026", NOON),  # obsolete asctime
        ("Sun, 29 Nov 2026 12:06:00 -0500", NOON),  # not GMT, but says which zone
        ("Sun, 29 Nov 2026 17:06:00 -0000", NOON),  # zone unknown: HTTP dates are GMT
        ("  Sun, 29 Nov 2026 17:06:00 GMT  ", NOON),
        ("", None),
        ("   ", None),
        ("garbage", None),
        ("Sun, 29 Nov 2026", None),
        ("Sun, 29 Nov 2026 25:06:00 GMT", None),
        ("Sun, 31 Nov 2026 17:06:00 GMT", None),
        ("Sun, 29 Nov 99999 17:06:00 GMT", None),
    ],
)
def test_date_header_is_read_as_utc_or_refused(header: str, expected: datetime | None) -> None:
    assert server_time({"Date": header}, elapsed=timedelta()) == expected


def test_the_exchanges_duration_is_taken_off_and_no_header_is_none() -> None:
    stamped = server_time({"Date": "Sun, 29 Nov 2026 17:06:00 GMT"}, elapsed=timedelta(seconds=2))
    assert stamped == NOON - timedelta(seconds=2)
    assert server_time({}, elapsed=timedelta()) is None


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with serve_sandbox(SandboxConfig(seed=3, appointments=50)) as server:
        yield server


def _first_page(sandbox: SandboxServer, session: requests.Session | None = None) -> Any:
    settings = client_settings(sandbox.url)
    with AthenaClient(
        settings, token_cache=MemoryTokenCache(), sleep=no_sleep, session=session
    ) as client:
        return next(client.paginate("195900", "/departments", {}, collection="departments"))


def test_a_page_carries_the_apis_clock_not_ours(sandbox: SandboxServer) -> None:
    sandbox.advance_clock(86_400)  # the API's clock a day ahead of this machine's
    before = datetime.now(UTC) + timedelta(days=1)
    page = _first_page(sandbox)
    after = datetime.now(UTC) + timedelta(days=1)
    assert page.server_time is not None
    assert before - timedelta(seconds=1) <= page.server_time <= after


def test_a_page_without_a_date_header_has_no_server_time(sandbox: SandboxServer) -> None:
    session = build_session(client_settings(sandbox.url))

    def drop_date(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        response.headers.pop("Date", None)

    session.hooks["response"].append(drop_date)
    assert _first_page(sandbox, session).server_time is None
