"""Leases on a real Redis: one holder, expiry, renewal, compare-and-delete, fencing."""

from __future__ import annotations

import time

import pytest
import redis

from worker.leases import LeaseLost, Leases


@pytest.fixture
def client(redis_url):
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


def make(client: redis.Redis, prefix: str, ttl: float = 5.0) -> Leases:
    return Leases(client, prefix=prefix, ttl=ttl)


def test_second_acquire_is_refused_until_release(client, redis_prefix):
    leases = make(client, redis_prefix)
    first = leases.acquire("appointments:195900:incremental:dept=1", owner="task-a")
    assert first is not None
    assert leases.acquire("appointments:195900:incremental:dept=1", owner="task-b") is None
    holder = leases.holder("appointments:195900:incremental:dept=1")
    assert holder is not None
    assert (holder.token, holder.owner) == (first.token, "task-a")
    assert 0 < holder.ttl_ms <= 5000
    assert leases.release(first)
    assert leases.holder("appointments:195900:incremental:dept=1") is None
    assert leases.acquire("appointments:195900:incremental:dept=1") is not None


def test_keys_live_under_the_prefix_and_units_are_independent(client, redis_prefix):
    leases = make(client, redis_prefix)
    assert leases.acquire("providers:195900:full") is not None
    assert leases.acquire("departments:195900:full") is not None
    keys = sorted(k.decode() for k in client.scan_iter(match=f"{redis_prefix}*"))
    assert keys == [
        f"{redis_prefix}:lease-fence",
        f"{redis_prefix}:lease:departments:195900:full",
        f"{redis_prefix}:lease:providers:195900:full",
    ]


def test_fencing_tokens_grow_with_every_grant(client, redis_prefix):
    leases = make(client, redis_prefix)
    tokens = []
    for _ in range(3):
        lease = leases.acquire("unit")
        assert lease is not None
        tokens.append(lease.token)
        leases.release(lease)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3
    assert client.get(f"{redis_prefix}:lease:unit") is None


def test_a_dead_holder_blocks_no_longer_than_the_ttl(client, redis_prefix):
    leases = make(client, redis_prefix, ttl=0.4)
    dead = leases.acquire("unit", owner="killed-worker")  # never renewed nor released
    assert dead is not None
    assert leases.acquire("unit") is None
    time.sleep(0.5)
    taken = leases.acquire("unit", owner="next-worker")
    assert taken is not None and taken.token > dead.token


def test_release_and_renew_never_touch_a_lease_taken_over(client, redis_prefix):
    leases = make(client, redis_prefix, ttl=0.3)
    stale = leases.acquire("unit", owner="slow")
    time.sleep(0.4)
    current = leases.acquire("unit", owner="fresh")
    assert stale is not None and current is not None
    assert not leases.renew(stale)
    assert not leases.release(stale)
    assert not leases.holds(stale)
    assert leases.holds(current)


def test_hold_renews_while_the_work_runs_and_releases_after(client, redis_prefix):
    leases = make(client, redis_prefix, ttl=0.6)
    with leases.hold("unit", owner="long-task") as held:
        assert held is not None
        time.sleep(1.5)  # 2.5 ttls: only renewal keeps it
        held.check()
        assert leases.acquire("unit") is None
    assert leases.holder("unit") is None


def test_hold_yields_none_when_taken(client, redis_prefix):
    leases = make(client, redis_prefix)
    assert leases.acquire("unit", owner="first") is not None
    with leases.hold("unit") as held:
        assert held is None
    holder = leases.holder("unit")
    assert holder is not None and holder.owner == "first"


def test_a_holder_that_lost_its_lease_is_fenced_off(client, redis_prefix):
    leases = make(client, redis_prefix, ttl=0.6)
    with leases.hold("unit", owner="paused") as held:
        assert held is not None
        client.delete(f"{redis_prefix}:lease:unit")  # expired while paused ...
        usurper = leases.acquire("unit", owner="other")  # ... and taken over
        assert usurper is not None and usurper.token > held.token
        with pytest.raises(LeaseLost):
            held.check()
        time.sleep(0.4)  # the renewal thread notices too
        assert held.lost.is_set()
    assert leases.holds(usurper)  # leaving the block did not free the usurper's lease
