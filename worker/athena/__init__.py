"""The athenahealth API client: tokens, paging, retries and a shared request budget."""

from worker.athena.broker import TokenBroker
from worker.athena.client import AthenaClient, Page, build_client
from worker.athena.errors import (
    AthenaError,
    AuthError,
    FatalError,
    PagingError,
    RetriableError,
    RetriesExhausted,
)
from worker.athena.paging import Pager
from worker.athena.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from worker.athena.stats import ClientStats
from worker.athena.tokens import MemoryTokenCache, RedisTokenCache, Token, TokenCache

__all__ = [
    "AthenaClient",
    "AthenaError",
    "AuthError",
    "ClientStats",
    "FatalError",
    "LocalRateLimiter",
    "MemoryTokenCache",
    "Page",
    "Pager",
    "PagingError",
    "RateLimiter",
    "RedisRateLimiter",
    "RedisTokenCache",
    "RetriableError",
    "RetriesExhausted",
    "Token",
    "TokenBroker",
    "TokenCache",
    "build_client",
]
