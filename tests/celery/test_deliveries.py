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
        with deliveries.counted("t1", max_deliveries=1) as deaths:
            assert deaths == 0
    assert deliveries.redis.exists(deliveries.key("t1")) == 0


def test_a_delivery_that_never_finished_counts_as_a_death(deliveries: Deliveries) -> None:
    assert deliveries.start("t2") == 0  # this process dies: finish never runs
    assert deliveries.start("t2") == 1  # redelivered, dies again
    with deliveries.counted("t2", max_deliveries=3) as deaths:  # ends in-process (a retry)
        assert deaths == 2
    assert deliveries.start("t2") == 2, "a finished delivery is not a death"
    assert 0 < deliveries.redis.ttl(deliveries.key("t2")) <= 60


def test_a_task_is_delivered_at_most_max_deliveries_times(deliveries: Deliveries) -> None:
    # TASK_MAX_RETRIES=2: the process may die twice; the third delivery is refused.
    ran = []
    for _ in range(2):
        deliveries.start("t3")  # a delivery that ran, and whose process died
        ran.append(True)
    refused = pytest.raises(DeliveriesExhausted, match="task t3 died 2 times")
    with refused, deliveries.counted("t3", max_deliveries=2):
        ran.append(True)
    assert len(ran) == 2
    with pytest.raises(DeliveriesExhausted), deliveries.counted("t3", max_deliveries=2):
        ran.append(True)  # nor any later delivery of it
    assert len(ran) == 2


def test_a_first_delivery_always_runs(deliveries: Deliveries) -> None:
    # TASK_MAX_RETRIES=0 still lets a task run once; a death then ends it.
    with deliveries.counted("t5", max_deliveries=0) as deaths:
        assert deaths == 0
    deliveries.start("t5")
    with pytest.raises(DeliveriesExhausted), deliveries.counted("t5", max_deliveries=0):
        pass


def test_the_refusal_survives_pickling_with_its_text() -> None:
    import pickle

    exc = pickle.loads(pickle.dumps(DeliveriesExhausted("t4", 3)))
    assert isinstance(exc, DeliveriesExhausted) and "task t4 died 3 times" in str(exc)
