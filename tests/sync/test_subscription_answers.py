"""Reading a ``GET …/changed/subscription`` answer defensively (pure; ATHENA_API.md §2.8)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.athena.errors import AuthError, FatalError, RetriableError
from worker.sync.subscriptions import advice, read_status, refusal, unusable


@pytest.mark.parametrize(
    ("body", "state"),
    [
        ({"status": "ACTIVE", "subscriptions": [{"eventname": "CheckIn"}]}, "active"),
        ({"status": "active"}, "active"),
        ({"status": "Partial", "subscriptions": [{"eventname": "CheckIn"}]}, "partial"),
        ({"status": "INACTIVE", "subscriptions": []}, "none"),
        ({"subscriptions": [{"eventname": "CheckIn"}]}, "active"),  # the feed's answer decides
        ({"subscriptions": "CheckIn"}, "none"),
        ({}, "none"),
        ([{"status": "ACTIVE"}], "none"),
        (None, "none"),
    ],
)
def test_a_subscription_answer_reads_as_a_state(body: Any, state: str) -> None:
    assert read_status(body).state == state


def test_refusals_and_what_they_mean() -> None:
    feed = "/appointments/changed"
    setup = AuthError(
        "not authorized: 403 Forbidden",
        status=403,
        path=feed,
        api_error="Changed messages require setup (subscription) that has not been done.",
    )
    assert unusable(setup) and refusal(setup).describe().startswith("403: Changed messages")
    assert unusable(FatalError("request rejected", status=404, path=feed))
    practice = FatalError("request rejected", status=404, api_error="Invalid practice.")
    assert not unusable(practice)
    assert not unusable(AuthError("not authorized: 401", status=401))
    assert not unusable(RetriableError("throttled: 403", status=403))  # the legacy throttle


def test_advice_names_the_next_step() -> None:
    none = read_status({"status": "INACTIVE"})
    assert advice(none, "195900", source="changed", auto=False).next_step is not None
    said = advice(none, "195900", source="changed", auto=True)
    assert said.level == "warn" and "ATHENA_AUTO_SUBSCRIBE=true" in (said.next_step or "")
    assert advice(none, "195900", source="booked", auto=False).level == "ok"
    active = advice(read_status({"status": "ACTIVE"}), "1", source="changed", auto=False)
    assert active.level == "ok" and active.next_step is None
