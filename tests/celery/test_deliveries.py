"""Deaths of a task's process, counted per task id in Redis (real Redis, no worker)."""

from __future__ import annotations

import pytest
import redis

from worker.deliveries import Deliveries, DeliveriesExhausted


@pytest.fixture
def deliveries(redis_url: str, redis_prefix: str) -> Deliveries:
    return Deliveries(redis.Redis.from_url(redis_url), prefix=redis_prefix, ttl=60)


def test_deliveries_that_finish_count_no_death_and_leave_nothing(deliveries: Deliveries) -> None:
    for _ in range(3):  # a first try and two Celery retries: the same task id, no death
        with deliveries.counted("t1", max_deaths=0) as deaths:
            assert deaths == 0
    assert deliveries.redis.exists(deliveries.key("t1")) == 0


def test_a_delivery_that_never_finished_counts_as_a_death(deliveries: Deliveries) -> None:
    assert deliveries.start("t2") == 0  # this process dies: finish never runs
    assert deliveries.start("t2") == 1  # redelivered, dies again
    with deliveries.counted("t2", max_deaths=2) as deaths:  # ends in-process (e.g. a retry)
        assert deaths == 2
    assert deliveries.start("t2") == 2, "a finished delivery is not a death"
    assert 0 < deliveries.redis.ttl(deliveries.key("t2")) <= 60


def test_a_delivery_after_too_many_deaths_is_refused(deliveries: Deliveries) -> None:
    deliveries.start("t3")
    deliveries.start("t3")
    ran = []
    refused = pytest.raises(DeliveriesExhausted, match="task t3 died 2 times")
    with refused, deliveries.counted("t3", max_deaths=1):
        ran.append(True)
    assert ran == []
    with pytest.raises(DeliveriesExhausted), deliveries.counted("t3", max_deaths=1):
        ran.append(True)  # nor any later delivery of it
    assert ran == []


def test_the_refusal_survives_pickling_with_its_text() -> None:
    import pickle

    exc = pickle.loads(pickle.dumps(DeliveriesExhausted("t4", 3)))
    assert isinstance(exc, DeliveriesExhausted) and "task t4 died 3 times" in str(exc)
