"""The appointments changed-data feed end to end: the sandbox over HTTP -> Postgres (issue 14).

Runs are made as the beat makes them (today's horizon): ``changed`` reads the feed,
``incremental`` polls ``/appointments/booked`` for practices not on the feed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox import FaultConfig, SandboxServer
from sandbox.feed import FeedQuery
from tests.sync.conftest import PRACTICE, Harness
from tests.sync.feedkit import (
    changed_ids,
    in_horizon,
    make_harness,
    requests_to,
    run,
    run_through,
    runs,
    source,
    stored,
    truth,
)
from worker.db import session_factory
from worker.store.sources import mark_feed_pending

FEED = "/appointments/changed"


@pytest.fixture
def h(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """A practice whose subscription takes 10 minutes (sandbox clock) to become readable;
    the worker subscribes by itself and checks again after a second."""
    yield from make_harness(
        make_sandbox,
        fresh_pg_url,
        {"subscription_activation_seconds": 600},
        {
            "ATHENA_AUTO_SUBSCRIBE": "true",
            "SYNC_SUBSCRIPTION_RECHECK_SECONDS": "1",
            "SYNC_MULTI_DEPARTMENT": "true",
        },
    )


@pytest.fixture
def fed(make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str) -> Iterator[Harness]:
    """A practice already subscribed (readable at once), the horizon loaded, the feed read once
    and the listing caught up with it: from here on the practice is read through the feed."""
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        assert [r.status for r in run(h, "changed")] == ["succeeded"]
        assert run(h, "incremental")  # the listing catches up with the feed once
        yield h


def test_not_subscribed_falls_back_then_subscribes_then_reads_the_feed(h: Harness) -> None:
    run(h, "incremental", "all")
    assert stored(h) == {i: t for i, t in truth(h).items() if i in stored(h)}

    # Not subscribed: the run asks, subscribes (ATHENA_AUTO_SUBSCRIBE) and is skipped.
    (first,) = run(h, "changed")
    assert first.status == "skipped" and "changed feed not in effect" in (first.error or "")
    assert "polled with /appointments/booked" in (first.error or "")
    assert h.server.stats()["requests"]["/v1/{practiceid}/appointments/changed/subscription"]
    assert source(h)["subscription"] == "none" and source(h)["subscribe_requested_at"]
    (row,) = runs(h, "changed")
    assert row["status"] == "skipped" and row["department_id"] is None

    # Asked for, not yet readable: the feed's own 403 says so; no second subscription request.
    (second,) = run(h, "changed")
    assert second.status == "skipped" and "require setup" in (second.error or "")
    assert requests_to(h, FEED, "403") == 1
    assert run(h, "changed") == []  # checked a moment ago: nothing planned, nothing asked

    # Meanwhile appointments are polled with the listing.
    change = h.server.mutate(PRACTICE, modify=6, seed=3)
    polled = run(h, "incremental")
    assert polled and {r.status for r in polled} == {"succeeded"}
    assert in_horizon(h, changed_ids(change))
    for ident in in_horizon(h, changed_ids(change)):
        assert stored(h)[ident] == truth(h)[ident]

    # Readable now: the next check reads the feed, past visits included.
    h.server.advance_clock(600)
    time.sleep(1.1)  # SYNC_SUBSCRIPTION_RECHECK_SECONDS
    (third,) = run(h, "changed")
    assert third.status == "succeeded" and third.unit.department_id is None
    assert source(h)["subscription"] == "active" and source(h)["feed_started_at"]
    change = h.server.mutate(PRACTICE, modify=2, checkout=1, cancel_past=1, add=1)
    (fourth,) = run(h, "changed")
    assert fourth.status == "succeeded" and fourth.counts.fetched == 5
    after = stored(h)
    for ident in changed_ids(change):
        assert after[ident] == truth(h)[ident], ident
    assert requests_to(h, FEED) == 2

    # The listing catches up once (changes made while the feed activated are not in it), then
    # the practice is left to the feed.
    assert run(h, "incremental")
    assert run(h, "incremental") == []


def test_changes_outside_the_horizon_reach_postgres_only_through_the_feed(fed: Harness) -> None:
    fed.sync("appointments", mode="reconcile")  # every served day, the oldest visits included
    change = fed.server.mutate(PRACTICE, checkin=2, checkout=2, cancel_past=2, past_days=14)
    horizon_start = datetime.now(UTC).date() - timedelta(days=fed.settings.sync_days_back)
    past = [i for k in ("checkin", "checkout", "cancel_past") for i in change[k]]
    assert len(past) == 6
    for ident in past:
        day = datetime.strptime(
            next(a for a in fed.server.truth()["appointments"] if a["appointmentid"] == ident)[
                "date"
            ],
            "%m/%d/%Y",
        ).date()
        assert day < horizon_start  # a booked poll of the horizon never asks for these days
    before = stored(fed)
    assert run(fed, "incremental") == []  # the beat's poll leaves the practice to the feed
    polling = fed.settings.with_overrides(sync_appointments_source="booked")
    assert run(fed, "incremental", settings=polling)  # and a poll of the horizon cannot see them
    assert all(stored(fed)[ident] == before[ident] != truth(fed)[ident] for ident in past)
    (result,) = run(fed, "changed")
    assert result.status == "succeeded" and result.counts.updated == 6
    after, expected = stored(fed), truth(fed)
    for ident in past:
        assert after[ident] == expected[ident] != before[ident]


def test_duplicate_deliveries_write_once(fed: Harness) -> None:
    # The same appointment changed twice before a read: two deliveries in one page.
    first = fed.server.mutate(PRACTICE, modify=1, seed=42)
    fed.server.advance_clock(5)
    second = fed.server.mutate(PRACTICE, modify=1, seed=42)
    (ident,) = {m["appointmentid"] for m in first["modified"]}
    assert {m["appointmentid"] for m in second["modified"]} == {ident}
    (result,) = run(fed, "changed")
    assert result.counts.fetched == 2 and result.counts.updated == 1
    assert stored(fed)[ident] == truth(fed)[ident]

    # Delivered again (a span read once more): nothing is written.
    xid = fed.scalar("SELECT txid_current() % 4294967296")
    with session_factory(fed.engine).begin() as session:
        mark_feed_pending(
            session,
            PRACTICE,
            "appointments",
            since=datetime.now(UTC) - timedelta(minutes=1),
            run_id=0,
            now=datetime.now(UTC),
        )
    (again,) = run(fed, "changed")
    assert again.status == "succeeded" and again.counts.fetched >= 2
    assert again.counts.updated == again.counts.inserted == 0
    assert again.counts.unchanged == 1  # two deliveries of one appointment, the newest kept
    written = "SELECT count(*) FROM appointments WHERE xmin::text::bigint > :xid"
    assert fed.scalar(written, xid=xid) == 0  # no new row version: nothing was written
    assert fed.scalar(written, xid=xid - 1_000_000) > 0  # (the check sees earlier writes)
    assert source(fed)["feed_pending_since"] is None


def test_an_older_delivery_never_overwrites_a_newer_row(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {"ATHENA_PAGE_LIMIT": "1"}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        run(h, "changed")
        h.server.mutate(PRACTICE, modify=1, seed=7)
        h.server.advance_clock(30)
        change = h.server.mutate(PRACTICE, modify=1, seed=7)
        (ident,) = {m["appointmentid"] for m in change["modified"]}
        newest = truth(h)[ident]
        run(h, "incremental")  # the newer state arrives first, through the listing
        assert stored(h)[ident] == newest
        (result,) = run(h, "changed")  # one change per page: the older one alone, then the newer
        assert result.counts.fetched == 2 and result.counts.updated == 0
        assert stored(h)[ident] == newest


def drop_lastmodified(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A feed answer whose records carry no ``lastmodified``."""
    if "/appointments/changed" not in (response.request.url or "") or not response.ok:
        return
    body = response.json()
    for record in body.get("appointments", []):
        record.pop("lastmodified", None)
    response._content = json.dumps(body).encode()


def test_a_feed_record_without_lastmodified_never_replaces_a_timed_row(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=2)
    before = stored(fed)
    (result,) = run_through(fed, drop_lastmodified)
    assert result.status == "succeeded" and result.counts.fetched == 2
    assert result.counts.updated == result.counts.inserted == 0  # cannot be shown newer
    after = stored(fed)
    for ident in changed_ids(change):
        assert after.get(ident) == before.get(ident) != truth(fed)[ident]
    # The listing, whose records carry the time, brings the change.
    polling = fed.settings.with_overrides(sync_appointments_source="booked")
    assert run(fed, "incremental", settings=polling)
    for ident in in_horizon(fed, changed_ids(change)):
        assert stored(fed)[ident] == truth(fed)[ident]


def test_a_malformed_feed_record_is_a_record_letter_and_the_rest_lands(fed: Harness) -> None:
    fed.server.set_faults(FaultConfig(malformed_appointments=8, seed=4))
    change = fed.server.mutate(PRACTICE, modify=3)
    (result,) = run(fed, "changed")
    assert result.status == "partial"
    assert result.counts.fetched == 11 and result.counts.dead_lettered == 8
    letters = fed.rows("dead_letters")
    assert len(letters) == 8
    assert {(d["kind"], d["error_class"], d["path"]) for d in letters} == {
        ("record", "bad_record", FEED)
    }
    for ident in changed_ids(change):
        assert stored(fed)[ident] == truth(fed)[ident]


def test_a_read_whose_answer_was_lost_is_read_again(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=4)
    fed.server.set_faults(FaultConfig(envelope_error_rate=1.0))  # served and marked, then spoiled
    (lost,) = run(fed, "changed")
    assert lost.status == "failed" and lost.error_class == "retries_exhausted"
    assert fed.server.stats()["feeds"][PRACTICE] == {"unprocessed": 0, "processed": 4}
    assert source(fed)["feed_pending_since"] is not None
    fed.server.set_faults(FaultConfig())
    (recovered,) = run(fed, "changed")
    assert recovered.status == "succeeded"
    for ident in changed_ids(change):
        assert stored(fed)[ident] == truth(fed)[ident]
    assert source(fed)["feed_pending_since"] is None
    letters = fed.rows("dead_letters", "kind = 'request'")
    assert [d["state"] for d in letters] == ["resolved"]


def test_a_feed_read_without_offset_until_nothing_waits(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {"ATHENA_PAGE_LIMIT": "4"}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        change = h.server.mutate(PRACTICE, modify=10)
        h.server.reset_stats()
        (result,) = run(h, "changed")
        # 10 waiting, 4 a read: 4 + 4 + 2 (no next, fewer than limit) = three reads.
        assert result.counts.fetched == 10 and requests_to(h, FEED) == 3
        for ident in changed_ids(change):
            assert stored(h)[ident] == truth(h)[ident]
        assert h.server.stats()["feeds"][PRACTICE]["unprocessed"] == 0


class RefuseLeaveUnprocessed:
    """A response hook standing in for a server that refuses ``leaveunprocessed`` together with
    ``showprocessed…`` (400), as a gateway would answer before the API (counts its refusals)."""

    def __init__(self) -> None:
        self.refused = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        url = response.request.url or ""
        if "showprocessedstartdatetime" in url and "leaveunprocessed" in url:
            self.refused += 1
            response.status_code = 400
            response._content = b'{"error":"Invalid value for leaveunprocessed."}'


def test_a_server_refusing_leaveunprocessed_is_asked_without_it(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=3)
    # Served and marked, the answer lost (a read whose process died), the marker left behind.
    fed.server.sandbox.store(PRACTICE).feed.read(FeedQuery(limit=100))
    with session_factory(fed.engine).begin() as session:
        since = datetime.now(UTC) - timedelta(seconds=30)
        mark_feed_pending(session, PRACTICE, "appointments", since=since, run_id=0, now=since)
    hook = RefuseLeaveUnprocessed()
    (result,) = run_through(fed, hook)
    assert result.status == "succeeded" and hook.refused >= 1
    for ident in changed_ids(change):
        assert stored(fed)[ident] == truth(fed)[ident]
    assert source(fed)["feed_pending_since"] is None


def test_a_lost_read_waits_for_the_subscription_to_come_back(fed: Harness) -> None:
    change = fed.server.mutate(PRACTICE, modify=2)
    feed = fed.server.sandbox.store(PRACTICE).feed
    feed.read(FeedQuery(limit=100))  # served and marked, its answer lost with its process
    with session_factory(fed.engine).begin() as session:
        since = datetime.now(UTC) - timedelta(seconds=30)
        mark_feed_pending(session, PRACTICE, "appointments", since=since, run_id=0, now=since)
    feed.unsubscribe(None)
    (skipped,) = run(fed, "changed")
    # A marker's age is judged by the API's clock, so the run asks how the subscription stands
    # first (this run had not seen that clock yet): gone.
    assert skipped.status == "skipped" and "status INACTIVE" in (skipped.error or "")
    assert source(fed)["feed_pending_since"] is not None, "the span is still owed"
    assert not fed.rows("dead_letters")
    fed.server.subscribe(PRACTICE)
    soon = fed.settings.with_overrides(sync_subscription_recheck_seconds=1)
    time.sleep(1.1)
    (result,) = run(fed, "changed", settings=soon)
    assert result.status == "succeeded"
    for ident in changed_ids(change):
        assert stored(fed)[ident] == truth(fed)[ident]
    assert source(fed)["feed_pending_since"] is None


def drop_date(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A gateway that sends no ``Date`` header."""
    response.headers.pop("Date", None)


def test_without_a_date_header_a_tick_still_costs_one_request(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str
) -> None:
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        h.server.reset_stats()
        for _ in range(3):
            change = h.server.mutate(PRACTICE, modify=1)
            (result,) = run_through(h, drop_date)
            assert result.status == "succeeded"
            for ident in changed_ids(change):
                assert stored(h)[ident] == truth(h)[ident]
        assert requests_to(h, FEED) == 3
        assert requests_to(h, FEED + "/subscription") == 1  # the first run's check only
        assert source(h)["server_offset_seconds"] is None


def test_a_feed_read_stopped_by_its_page_budget_is_not_fresh_until_drained(
    make_sandbox: Callable[..., SandboxServer], fresh_pg_url: str, monkeypatch: Any
) -> None:
    """A run that stops at MAX_PAGES with changes still waiting has not read everything up to
    its start: it says so (``more_waiting``) and freshness does not date the practice from it;
    the run that drains the rest does."""
    import worker.sync.read.feed as feed
    from worker.store.freshness_query import read_facts

    monkeypatch.setattr(feed, "MAX_PAGES", 2)
    for h in make_harness(make_sandbox, fresh_pg_url, {}, {"ATHENA_PAGE_LIMIT": "4"}):
        h.server.subscribe(PRACTICE)
        run(h, "incremental", "all")
        h.server.mutate(PRACTICE, modify=10)

        def changed_reads(h: Harness = h) -> list[Any]:
            with session_factory(h.engine)() as session:
                facts = read_facts(session, [PRACTICE])
            return [f for f in facts if f.kind == "read" and f.changed]

        (paused,) = run(h, "changed")
        assert paused.counts.fetched == 8 and paused.counts.more_waiting
        assert "more changes waiting" in (paused.note or "")
        assert h.scalar("SELECT more_waiting FROM sync_runs WHERE id = :i", i=paused.run_id)
        assert changed_reads() == []  # the only feed run stopped short: not fresh from it
        (drained,) = run(h, "changed")
        assert drained.counts.fetched == 2 and not drained.counts.more_waiting
        (read,) = changed_reads()
        assert read.at == h.scalar(
            "SELECT started_at FROM sync_runs WHERE id = :i", i=drained.run_id
        )
