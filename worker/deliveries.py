"""Deliveries of a Celery task whose process died running it, counted in Redis.

With ``task_acks_late`` and ``task_reject_on_worker_lost`` a task's message goes back to the
queue when the pool process running it dies (OOM, segfault) and comes back after the visibility
timeout when the whole worker is killed. Either way it is the same message: Celery's
``request.retries`` counts only ``self.retry()`` calls, and the transport's ``redelivered`` flag
is a boolean, so neither can tell the fifth death from the first. A task that kills its process
every time would be delivered for ever.

One small hash per task id, ``{prefix}:deliveries:{task_id}``, counts them:

- **start** (Lua, one round trip): if the hash still says ``running`` (an earlier delivery began
  and never finished), count one death; mark this delivery ``running``; refresh the expiry.
- **finish**: clear ``running`` when the task body ended in its process (returned, raised, or
  asked for a retry). A retry is the same task id, so its deaths keep counting across retries.

The hash expires ``ttl`` seconds after the last delivery began (it only has to outlive the gap
between two deliveries); a task that never died leaves nothing behind. A task is delivered at most
``max_deliveries`` times: the delivery after that many deaths is refused (not run).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

log = structlog.get_logger()

_START = """
if redis.call('hexists', KEYS[1], 'running') == 1 then redis.call('hincrby', KEYS[1], 'died', 1) end
redis.call('hset', KEYS[1], 'running', '1')
redis.call('expire', KEYS[1], ARGV[1])
return tonumber(redis.call('hget', KEYS[1], 'died') or '0')
"""


class DeliveriesExhausted(RuntimeError):
    """The process running this task died on every one of its allowed deliveries.

    Its ``task_failed`` letter says so (``task_args.process_deaths``): the periodic replay leaves
    it to a person, since running it again would likely kill another process."""

    def __init__(self, task_id: str, deaths: int) -> None:
        super().__init__(
            f"the process running task {task_id} died {deaths} times (killed, out of memory, "
            "crashed): it is not run again"
        )
        self.task_id = task_id
        self.deaths = deaths

    def __reduce__(self) -> tuple[type[DeliveriesExhausted], tuple[str, int]]:
        # Celery pickles a task's exception before on_failure; keep the type and its text.
        return type(self), (self.task_id, self.deaths)


class Deliveries:
    """Per-task-id death counts under one key prefix."""

    def __init__(self, redis: Any, *, prefix: str, ttl: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl = max(1, int(ttl))
        self._start = redis.register_script(_START)

    def key(self, task_id: str) -> str:
        """The Redis key of one task's count."""
        return f"{self.prefix}:deliveries:{task_id}"

    def start(self, task_id: str) -> int:
        """Mark this delivery running; how many earlier deliveries died before finishing."""
        return int(self._start(keys=[self.key(task_id)], args=[self.ttl]))

    def finish(self, task_id: str) -> None:
        """This delivery ended in its process (whatever the outcome): it did not die."""
        self.redis.hdel(self.key(task_id), "running")

    @contextmanager
    def counted(self, task_id: str, *, max_deliveries: int) -> Iterator[int]:
        """Run the block as one delivery of ``task_id``; refuse it once ``max_deliveries``
        deliveries (at least one) have died: a task is run at most that many times."""
        deaths = self.start(task_id)
        if deaths >= max(1, max_deliveries):
            self.finish(task_id)
            log.error("task.deliveries_exhausted", task_id=task_id, deaths=deaths)
            raise DeliveriesExhausted(task_id, deaths)
        if deaths:
            log.warning("task.redelivered_after_death", task_id=task_id, deaths=deaths)
        try:
            yield deaths
        finally:
            self.finish(task_id)
