"""The sandbox application: routes ``/oauth2`` and ``/v1`` requests to answers.

Order per ``/v1`` request: latency, gateway faults (rps ceiling, 429, 5xx, legacy 403), bearer
check, practice check, endpoint check, then the route, whose 200 bodies are cached until data or
faults change (the changed-data feed's never are: a read marks what it serves); a listing's 200
may then be spoiled (``envelope_error_rate``, never cached; a feed read spoiled so has marked
its records processed all the same, as a response lost in transit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sandbox import feed_routes, routes
from sandbox.cache import PageCache
from sandbox.clock import ServerClock
from sandbox.config import FaultConfig, SandboxConfig
from sandbox.faults import FaultInjector
from sandbox.oauth import token_endpoint
from sandbox.query import ApiError, Params
from sandbox.response import JSON, Headers, Response, api_json
from sandbox.stats import Stats
from sandbox.store import Mutation, PracticeStore
from sandbox.tokens import TokenIssuer, TokenState

TOKEN_PATH = "/oauth2/v1/token"
UNKNOWN_PATH = {"error": "Unknown API path."}
BAD_TOKEN = {"error": "Developer Inactive", "detailedmessage": "Invalid or missing access token."}
EXPIRED = {"error": "Developer Inactive", "detailedmessage": "The access token has expired."}
FORBIDDEN = {"error": "Incorrect permissions.", "detailedmessage": "Bad auth."}
# A sandbox choice: the real wording of a 403 for an endpoint not enabled is unverified.
NOT_ENABLED = {
    "error": "Forbidden.",
    "detailedmessage": "This API key is not enabled for this endpoint in this practice.",
}
NO_PRACTICE = {"error": "Invalid practice.", "detailedmessage": "The practice ID does not exist."}


class Sandbox:
    """All sandbox state and the request entry point (no sockets here)."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = ServerClock()  # `Date` headers and `lastmodified` stamps read it
        clock = self.clock
        self.stores = {
            pid: PracticeStore(pid, config, server_clock=clock) for pid in config.practices
        }
        self.stores |= {
            pid: PracticeStore(pid, config, empty=True, server_clock=clock)
            for pid in config.empty_practices
        }
        # Token lifetimes and the per-minute mint limit run on the sandbox's clock too, so a
        # test advancing it sees tokens expire (monotonic: the machine's clock may step).
        self.tokens = TokenIssuer(
            config.token_mints_per_minute,
            clock=lambda: time.monotonic() + clock.ahead_seconds,
        )
        self.stats = Stats()
        self.cache = PageCache(config.cache_bytes)
        self.faults = FaultInjector(FaultConfig())
        self._lock = threading.Lock()
        # Part of every cache key, so a body rendered from data older than a change never hits.
        self.version = 0
        self.sleep: Callable[[float], None] = time.sleep
        self.set_faults(config.faults)

    def set_faults(self, faults: FaultConfig) -> None:
        """Switch faults at runtime; the seeded sequence restarts."""
        with self._lock:
            previous = self.faults.faults
            self.faults.configure(faults)
            changed = (previous.malformed_appointments, previous.seed) != (
                faults.malformed_appointments,
                faults.seed,
            )
            if changed:
                for store in self.stores.values():
                    store.set_malformed(faults.malformed_appointments, faults.seed)
            self.version += 1
            self.cache.clear()

    def mutate(self, practice_id: str, change: Mutation) -> dict[str, Any]:
        """Change appointments of one practice; see ``PracticeStore.mutate``."""
        result = self.store(practice_id).mutate(change)
        with self._lock:
            self.version += 1
            self.cache.clear()
        return result

    def snapshot(self) -> dict[str, Any]:
        """Request counts (``Stats.snapshot``) and each practice's feed queue
        (``"feeds": {practiceid: {"unprocessed", "processed"}}``)."""
        feeds = {pid: store.feed.counts() for pid, store in self.stores.items()}
        return {**self.stats.snapshot(), "feeds": feeds}

    def store(self, practice_id: str) -> PracticeStore:
        """The served practice ``practice_id``; KeyError names it otherwise."""
        try:
            return self.stores[practice_id]
        except KeyError:
            raise KeyError(f"practice {practice_id} is not served") from None

    def handle(self, method: str, path: str, query: str, headers: Headers, body: bytes) -> Response:
        """Answer one API request (admin routes are handled elsewhere)."""
        if path == TOKEN_PATH:
            answer = self._token(method, headers, body)
            self.stats.record(TOKEN_PATH, answer.status, None)
            return answer
        parts = [p for p in path.split("/") if p]
        template = routes.template(parts)
        practice_id = (
            parts[1] if len(parts) > 1 and parts[0] == "v1" and parts[1].isdigit() else None
        )
        if method == "POST" and body:  # a form body (a subscription's eventname)
            query = f"{query}&{body.decode('utf-8', 'replace')}" if query else body.decode()
        answer = self._api(method, parts, query, headers, practice_id)
        self.stats.record(template, answer.status, practice_id)
        return answer

    def _token(self, method: str, headers: Headers, body: bytes) -> Response:
        if method != "POST":
            return api_json(404, UNKNOWN_PATH)
        ttl = self.faults.faults.token_ttl_seconds or self.config.token_ttl_seconds
        client = (self.config.client_id, self.config.client_secret)
        answer, minted = token_endpoint(self.tokens, headers, body, client=client, ttl_seconds=ttl)
        if minted:
            self.stats.minted()
        return answer

    def _api(
        self,
        method: str,
        parts: list[str],
        query: str,
        headers: Headers,
        practice_id: str | None,
    ) -> Response:
        if not parts or parts[0] != "v1":
            return api_json(404, UNKNOWN_PATH)
        delay = self.faults.latency()
        if delay:
            self.sleep(delay)
        fault = self.faults.decide(practice_id)
        if fault is not None:
            return Response(fault.status, fault.body, fault.content_type, fault.headers)
        denied = self._auth(headers.get("Authorization"))
        if denied is not None:
            return denied
        rest = parts[2:]
        feed = practice_id != "1" and feed_routes.is_feed(rest)
        allowed = feed_routes.allowed(method, rest) if feed else method == "GET"
        if not allowed or practice_id is None or not rest:
            return api_json(404, UNKNOWN_PATH)
        if practice_id in self.config.forbidden_practices:
            return api_json(401, FORBIDDEN)
        if practice_id != "1" and practice_id not in self.stores:
            return api_json(404, NO_PRACTICE)
        refused = self.config.endpoint_forbidden(practice_id, "/" + "/".join(rest))
        if refused is not None:
            return api_json(refused, NOT_ENABLED if refused == 403 else FORBIDDEN)
        if self.config.endpoint_unserved(practice_id, "/" + "/".join(rest)):
            return api_json(404, UNKNOWN_PATH)
        if feed:
            answer = self._feed(method, practice_id, rest, query)
        else:
            answer = self._route(practice_id, rest, query)
        if answer.status == 200 and routes.is_listing(parts[2:]):
            spoiled = self.faults.spoil(answer.body)
            if spoiled is not None:
                return Response(spoiled.status, spoiled.body, spoiled.content_type)
        return answer

    def _feed(self, method: str, practice_id: str, rest: list[str], query: str) -> Response:
        """The changed-data feed: never cached (a read marks what it serves)."""
        try:
            body = feed_routes.feed_route(
                self.stores[practice_id].feed,
                method,
                rest,
                Params(query),
                base=f"/v1/{practice_id}/" + "/".join(rest),
                default_limit=self.config.appointments_default_limit,
                max_limit=self.config.max_limit,
                notes=self.config.feed_appointment_notes,
            )
        except ApiError as error:
            return api_json(error.status, error.body, error.headers)
        return Response(200, body, JSON)

    def _auth(self, header: str | None) -> Response | None:
        if not header or not header.lower().startswith("bearer "):
            return api_json(401, BAD_TOKEN, (("WWW-Authenticate", "Bearer"),))
        state = self.tokens.check(header[7:].strip())
        if state is TokenState.VALID:
            return None
        payload = EXPIRED if state is TokenState.EXPIRED else BAD_TOKEN
        return api_json(401, payload, (("WWW-Authenticate", "Bearer"),))

    def _route(self, practice_id: str, rest: list[str], query: str) -> Response:
        params = Params(query)
        key = (self.version, practice_id, tuple(rest), params.normalized())
        cached = self.cache.get(key)
        if cached is not None:
            return Response(200, cached, JSON)
        try:
            if practice_id == "1":
                body = routes.all_practiceinfo(self, rest, params)
            else:
                body = routes.practice_route(self, self.stores[practice_id], rest, params)
        except ApiError as error:
            return api_json(error.status, error.body, error.headers)
        self.cache.put(key, body)
        return Response(200, body, JSON)
