"""The beat's heartbeat: each pass of its scheduler loop stamps a Redis key; ``athena-sync health
beat`` reads it. A beat that is alive but wedged stops stamping, so the check sees it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis import Redis

log = structlog.get_logger()

# Longest sleep of the scheduler loop between two passes (``beat_max_loop_interval``): the
# heartbeat is at most this old on a healthy beat.
BEAT_LOOP_SECONDS = 30
DEFAULT_MAX_AGE_SECONDS = 4 * BEAT_LOOP_SECONDS


def heartbeat_key(prefix: str) -> str:
    """The Redis key holding the beat's last heartbeat (unix seconds)."""
    return f"{prefix}:beat:heartbeat"


def beat(redis: Redis, prefix: str, *, now: float | None = None) -> None:
    """Stamp the heartbeat (kept a day: a key that expired means no beat for that long)."""
    redis.set(heartbeat_key(prefix), repr(time.time() if now is None else now), ex=24 * 3600)


@dataclass(frozen=True)
class BeatHealth:
    """What the heartbeat says: its age in seconds (None: never stamped) and the verdict."""

    age_seconds: float | None
    max_age_seconds: float

    @property
    def healthy(self) -> bool:
        """Stamped no longer than ``max_age_seconds`` ago."""
        return self.age_seconds is not None and self.age_seconds <= self.max_age_seconds


def beat_health(
    redis: Redis, prefix: str, *, max_age_seconds: float, now: float | None = None
) -> BeatHealth:
    """Read the heartbeat and judge it."""
    raw = redis.get(heartbeat_key(prefix))
    if raw is None:
        return BeatHealth(None, max_age_seconds)
    stamped = float(raw.decode() if isinstance(raw, bytes) else raw)
    age = (time.time() if now is None else now) - stamped
    return BeatHealth(max(0.0, age), max_age_seconds)


def stamping(tick: Callable[..., Any], stamp: Callable[[], None]) -> Callable[..., Any]:
    """Wrap a scheduler's ``tick`` so each pass stamps the heartbeat first; a stamp that fails
    (Redis away for a moment) never stops the schedule."""

    def ticked(*args: Any, **kwargs: Any) -> Any:
        try:
            stamp()
        except Exception as exc:  # the schedule matters more than its heartbeat
            log.warning("beat.heartbeat_failed", error=type(exc).__name__)
        return tick(*args, **kwargs)

    return ticked
