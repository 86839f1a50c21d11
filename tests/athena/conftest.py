"""Fixtures for the client tests: settings aimed at a loopback server, and a scripted HTTP server.

The scripted server stands in for misbehaving servers the sandbox does not model (a looping pager,
a token endpoint refusing credentials). Everything else runs against the real sandbox.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import structlog

from worker.settings import Settings

CLIENT_ID = "sandbox-client"
SECRET = "sandbox-secret"


@dataclass
class Reply:
    """One canned answer."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    """One request the scripted server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str


Handler = Callable[[Seen], Reply]


class ScriptedServer:
    """A loopback HTTP server whose answers are Python functions of the request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.route("POST", "/oauth2/v1/token", lambda _: Reply(body=_token()))
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length).decode() if length else "",
                )
                with server._lock:
                    server.seen.append(seen)
                handler = server.routes.get((self.command, parts.path))
                reply = handler(seen) if handler else Reply(404, {"error": "no route"})
                payload = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def api(self, path: str, handler: Handler, practice_id: str = "195900") -> None:
        self.route("GET", f"/v1/{practice_id}{path}", handler)

    def calls(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _token(name: str = "scripted-token-1", expires_in: int = 3600) -> dict[str, Any]:
    return {"access_token": name, "token_type": "Bearer", "expires_in": expires_in}


def client_settings(url: str, **overrides: Any) -> Settings:
    """Settings aimed at a loopback server, fast timeouts and backoff."""
    values: dict[str, Any] = {
        "athena_base_url": url,
        "athena_token_url": f"{url}/oauth2/v1/token",
        "athena_client_id": CLIENT_ID,
        "athena_client_secret": SECRET,
        "rate_limit_rps": 1000.0,
        "rate_limit_burst": 1000,
        "max_attempts": 3,
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "connect_timeout_seconds": 2.0,
        "read_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    """A started scripted server; stopped afterwards."""
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def debug_logs() -> Iterator[None]:
    """Let debug events through (another test may have configured INFO); restore afterwards."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(0))
    yield
    structlog.configure(**saved)


def no_sleep(_: float) -> None:
    """The testing switch: retries and backoff do not wait."""
