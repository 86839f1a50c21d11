"""Serving the sandbox over HTTP/1.1 (keep-alive) with the standard library, in a daemon thread."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from sandbox.admin import handle_admin
from sandbox.api import Sandbox
from sandbox.config import FaultConfig, SandboxConfig
from sandbox.response import Response
from sandbox.store import Mutation

# (method, path, status, seconds): never the query, headers or body (tokens live there).
RequestHook = Callable[[str, str, int, float], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "athena-sync-sandbox"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def _serve(self) -> None:
        started = self.server.clock()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        sandbox = self.server.sandbox
        if target.path.startswith("/_sandbox/") or target.path == "/_sandbox":
            answer = handle_admin(sandbox, self.command, target.path, target.query, body)
        else:
            answer = sandbox.handle(self.command, target.path, target.query, self.headers, body)
        if self.server.hook is not None:  # before the answer leaves, so the line is never late
            self.server.hook(
                self.command, target.path, answer.status, self.server.clock() - started
            )
        self._write(answer)

    def _write(self, answer: Response) -> None:
        # One write for status line, headers and body: no Nagle/delayed-ACK stalls.
        lines = [f"HTTP/1.1 {answer.status} {self.responses.get(answer.status, ('',))[0]}"]
        lines.append(f"Server: {self.server_version}")
        lines.append(f"Date: {self.server.sandbox.clock.http_date()}")
        if answer.content_type:
            lines.append(f"Content-Type: {answer.content_type}")
        lines.append(f"Content-Length: {len(answer.body)}")
        lines.extend(f"{name}: {value}" for name, value in answer.headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + answer.body if self.command != "HEAD" else head)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (the hook reports requests instead)."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox, hook: RequestHook | None):
        import time

        self.sandbox = sandbox
        self.hook = hook
        self.clock = time.perf_counter
        super().__init__(address, _Handler)


class SandboxServer:
    """The sandbox on ``host:port`` (port 0 picks a free one). Use as a context manager or call
    ``start()``/``stop()``; the admin verbs are also methods here."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: RequestHook | None = None,
    ) -> None:
        self.config = config or SandboxConfig()
        self.sandbox = Sandbox(self.config)
        self._address = (host, port)
        self._hook = on_request
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8765`` (only once started)."""
        if self._httpd is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        """Bind, serve in a daemon thread and return the base URL."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self._address, self.sandbox, self._hook)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="athena-sandbox", daemon=True
            )
            self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI's ``serve``)."""
        self._httpd = _HTTPServer(self._address, self.sandbox, self._hook)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def mutate(self, practice_id: str | None = None, **counts: Any) -> dict[str, Any]:
        """Change appointments (``cancel``, ``modify``, ``delete``, ``add``, ``checkin``,
        ``checkout``, ``cancel_past`` counts, ``past_days``, ``seed``, as ``Mutation``); returns
        what changed (as ``POST /_sandbox/mutate``)."""
        return self.sandbox.mutate(practice_id or self.config.practices[0], Mutation(**counts))

    def subscribe(self, practice_id: str | None = None, event: str | None = None) -> None:
        """Subscribe the practice's changed-data feed (every event, or one), as ``POST
        /appointments/changed/subscription`` does."""
        self.sandbox.store(practice_id or self.config.practices[0]).feed.subscribe(event)

    def stats(self) -> dict[str, Any]:
        """Request counts and feed queues (as ``GET /_sandbox/stats``)."""
        return self.sandbox.snapshot()

    def reset_stats(self) -> None:
        """Zero the request counts."""
        self.sandbox.stats.reset()

    def truth(self, practice_id: str | None = None) -> dict[str, Any]:
        """The full ground truth of one practice (as ``GET /_sandbox/truth``)."""
        return self.sandbox.store(practice_id or self.config.practices[0]).truth()

    def set_faults(self, faults: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the faults in force (``FaultConfig()`` switches all off); keyword arguments
        build a FaultConfig from scratch, e.g. ``set_faults(error_rate=0.5, seed=3)``."""
        chosen = faults if faults is not None else FaultConfig(**changes)
        self.sandbox.set_faults(chosen)
        return chosen

    def expire_tokens(self) -> int:
        """Expire every issued token now; returns how many were live."""
        return self.sandbox.tokens.expire_all()

    def advance_clock(self, seconds: float) -> dt.datetime:
        """Move the sandbox's clock forward (as ``POST /_sandbox/clock``); returns its time."""
        return self.sandbox.clock.advance(seconds)
