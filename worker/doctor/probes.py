"""The doctor's requests: one token mint and one small GET per endpoint, never retried.

Retrying would hide exactly what the doctor is asked to show (a 429, a 5xx, an HTML page), so
each probe sends one request through the shared budget and records its status, the API's error
text, the record count and the request id. Responses are mapped by the same function the sync
uses (:func:`worker.athena.responses.decode_response`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from worker.athena.errors import AthenaError
from worker.athena.paging import totalcount_of
from worker.athena.ratelimit import RateLimiter
from worker.athena.responses import decode_response, listing_problem, transport_error
from worker.athena.transport import BearerAuth

PROBE_READ_TIMEOUT = 20.0


@dataclass(frozen=True)
class Outcome:
    """One request's result: the decoded body or the mapped error, never both."""

    http_status: int | None
    request_id: str
    elapsed_ms: float
    body: Any = None
    error: AthenaError | None = None

    def listing(self, collection: str) -> Listing:
        """The envelope as the sync reads it (:func:`listing_problem`, the same rule): the list
        under ``collection`` and ``totalcount``."""
        if listing_problem(self.body, collection) is not None:
            body = self.body if isinstance(self.body, dict) else {}
            return Listing(None, totalcount_of(body))
        return Listing(self.body.get(collection, []), totalcount_of(self.body))


@dataclass(frozen=True)
class Listing:
    """A listing page: ``rows`` is None when the body has no list where one belongs."""

    rows: list[Any] | None
    totalcount: int | None

    @property
    def count(self) -> int | None:
        """Records in all: ``totalcount`` when sent, else the rows on this page."""
        if self.totalcount is not None:
            return self.totalcount
        return len(self.rows) if self.rows is not None else None


@dataclass
class Prober:
    """Sends single, budgeted GETs below ``{base_url}/v1/{practiceid}``."""

    session: requests.Session
    base_url: str
    access_token: str
    limiter: RateLimiter
    timeouts: tuple[float, float]

    def get(self, practice_id: str, path: str, params: Mapping[str, Any]) -> Outcome:
        """GET once; 4xx/5xx, HTML and transport failures come back as ``Outcome.error``."""
        self.limiter.acquire(practice_id)
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            response = self.session.get(
                f"{self.base_url.rstrip('/')}/v1/{practice_id}{path}",
                params=dict(params),
                auth=BearerAuth(self.access_token),
                headers={"Accept": "application/json", "X-Request-Id": request_id},
                timeout=self.timeouts,
            )
        except requests.RequestException as exc:
            error = transport_error(
                exc,
                path=path,
                practice_id=practice_id,
                timeouts=self.timeouts,
                request_id=request_id,
            )
            return Outcome(None, request_id, _since(started), error=error)
        elapsed = _since(started)
        try:
            body = decode_response(response, path=path, practice_id=practice_id)
        except AthenaError as error:
            return Outcome(response.status_code, request_id, elapsed, error=error)
        return Outcome(response.status_code, request_id, elapsed, body=body)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
