"""The sandbox's clock: ``Date`` headers and ``lastmodified`` stamps read it; it only moves on."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from tests.sandbox.conftest import PRACTICE, Api

EASTERN = ZoneInfo("US/Eastern")
DAY = 86_400


def _date_header(api: Api) -> dt.datetime:
    return parsedate_to_datetime(api.get(f"/v1/{PRACTICE}/departments").headers["Date"])


def test_advancing_the_clock_moves_date_headers_and_lastmodified_stamps(api: Api) -> None:
    shown = api.admin("GET", "clock").json()
    assert shown["ahead_seconds"] == 0
    before = _date_header(api)
    moved = api.admin("POST", "clock", json={"advance_seconds": DAY})
    assert moved.status_code == 200 and moved.json()["ahead_seconds"] == DAY
    after = _date_header(api)
    assert dt.timedelta(days=1) <= after - before < dt.timedelta(days=1, seconds=30)
    stamp = api.admin("POST", "mutate", json={"modify": 1}).json()["lastmodified"]
    stamped = dt.datetime.strptime(stamp, "%m/%d/%Y %H:%M:%S").replace(tzinfo=EASTERN)
    assert after - dt.timedelta(seconds=1) <= stamped <= after + dt.timedelta(seconds=30)
    assert api.server.advance_clock(60) >= after + dt.timedelta(seconds=60)


def test_the_clock_never_goes_back_and_bad_requests_say_why(api: Api) -> None:
    for body in (
        {"advance_seconds": -1},
        {"advance_seconds": "1"},
        {"advance_seconds": True},
        {"advance": 1},
        [1],
    ):
        refused = api.admin("POST", "clock", json=body)
        assert refused.status_code == 400 and "advance_seconds" in refused.json()["error"]
    assert api.admin("GET", "clock").json()["ahead_seconds"] == 0


def test_tokens_expire_on_the_sandboxs_clock(api) -> None:
    """Advancing the clock is time passing: a token it outlived is refused as expired."""
    token = api.token
    assert api.get("/v1/195900/ping", token=token).status_code == 200
    api.server.advance_clock(3601)
    refused = api.get("/v1/195900/ping", token=token)
    assert refused.status_code == 401 and "expired" in refused.text
