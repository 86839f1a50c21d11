"""Test helpers: the sandbox on a free loopback port for the length of a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer


@contextmanager
def serve_sandbox(config: SandboxConfig | None = None) -> Iterator[SandboxServer]:
    """Start a SandboxServer on 127.0.0.1 with a free port; stop it afterwards."""
    server = SandboxServer(config, host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
