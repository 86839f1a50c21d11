"""A bad record's letter is settled by a clean copy of the same appointment only when that copy is
at least as new (its ``lastmodified`` not older than the bad copy's).

The sandbox serves clean data, so response hooks stand in for what it cannot do: one spoils the
newest change of an appointment as the feed delivers it (a field no mapper accepts), the other
serves an older clean copy on the listing (a page fetched before the change and written after
the feed's letter: two workers racing).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from sandbox import SandboxServer
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import make_harness, run, run_through, stored, truth


@pytest.fixture
def fed(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """Subscribed, loaded, read through the feed."""
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        run(h, "changed")
        yield h


def rewrite(ident: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., None]:
    """A response hook that passes appointment ``ident`` of any listing through ``change``."""

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict) or not isinstance(body.get("appointments"), list):
            return
        body["appointments"] = [
            change(a) if a.get("appointmentid") == ident else a for a in body["appointments"]
        ]
        response._content = json.dumps(body).encode()

    return hook


def record_of(h: Harness, ident: str) -> dict[str, Any]:
    return next(a for a in h.server.truth(PRACTICE)["appointments"] if a["appointmentid"] == ident)


def test_an_older_clean_copy_never_settles_the_letter_of_a_newer_bad_one(fed: Harness) -> None:
    first = fed.server.mutate(PRACTICE, modify=1, seed=7)
    (ident,) = {m["appointmentid"] for m in first["modified"]}
    older = record_of(fed, ident)
    assert [r.status for r in run(fed, "changed")] == ["succeeded"]
    fed.server.advance_clock(60)
    second = fed.server.mutate(PRACTICE, modify=1, seed=7)
    assert {m["appointmentid"] for m in second["modified"]} == {ident}
    newer = record_of(fed, ident)
    assert newer["lastmodified"] > older["lastmodified"]

    # The newest change arrives spoiled: a letter holding the newer copy.
    spoiled = rewrite(ident, lambda a: {**a, "starttime": "25:61"})
    (bad,) = run_through(fed, spoiled)
    assert bad.status == "partial" and bad.counts.dead_lettered == 1
    (letter,) = fed.rows("dead_letters")
    assert (letter["record_id"], letter["state"]) == (ident, "open")
    assert letter["record"]["lastmodified"] == newer["lastmodified"]

    # An older clean copy lands afterwards: the letter stays open.
    polling = fed.settings.with_overrides(sync_appointments_source="booked")
    stale = rewrite(ident, lambda a: older)
    assert {r.status for r in run_through(fed, stale, "incremental", settings=polling)} == {
        "succeeded"
    }
    assert stored(fed)[ident] != truth(fed)[ident], "the newest change has not landed clean"
    (letter,) = fed.rows("dead_letters")
    assert letter["state"] == "open", "an older clean copy settled a newer bad one"

    # A clean copy at least as new settles it.
    assert {r.status for r in run(fed, "incremental", settings=polling)} == {"succeeded"}
    assert stored(fed)[ident] == truth(fed)[ident]
    (letter,) = fed.rows("dead_letters")
    assert (letter["state"], letter["resolution_note"]) == ("resolved", "record synced cleanly")
