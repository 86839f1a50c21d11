"""No secret or token in logs (captured events and rendered output) or in exception messages."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from sandbox import FaultConfig, SandboxServer
from sandbox.testing import serve_sandbox
from tests.athena.conftest import SECRET, client_settings, no_sleep
from worker.athena import AthenaClient, AthenaError, MemoryTokenCache
from worker.logging import configure_logging
from worker.settings import Settings


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with serve_sandbox() as server:
        yield server


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    """The project's own JSON log output at DEBUG, captured; structlog restored afterwards."""
    saved = structlog.get_config()
    stream = io.StringIO()
    configure_logging(Settings(log_level="DEBUG", log_format="json"), stream=stream)
    yield stream
    structlog.configure(**saved)


def exercise(server: SandboxServer) -> tuple[list[str], list[AthenaError]]:
    """Mint, refresh after expiry, fail in every way; return the tokens seen and errors raised."""
    cache = MemoryTokenCache()
    client = AthenaClient(
        client_settings(server.url, max_attempts=2), token_cache=cache, sleep=no_sleep
    )
    tokens, errors = [], []
    client.get("195900", "/ping")
    tokens.append(cache.load().access_token)  # type: ignore[union-attr]
    server.expire_tokens()
    client.get("195900", "/ping")
    tokens.append(cache.load().access_token)  # type: ignore[union-attr]
    attempts: list[Callable[[], object]] = [
        lambda: client.get("1128700", "/ping"),
        lambda: client.get("424242", "/ping"),
        lambda: AthenaClient(client_settings(server.url, athena_client_secret="not-" + SECRET)).get(
            "195900", "/ping"
        ),
    ]
    server.set_faults(FaultConfig(error_rate=1.0, html_502_share=1.0))
    attempts.append(lambda: client.get("195900", "/ping"))
    for attempt in attempts:
        try:
            attempt()
        except AthenaError as exc:
            errors.append(exc)
    server.set_faults(FaultConfig())
    assert len(errors) == 4 and len(set(tokens)) == 2
    return tokens, errors


def assert_clean(text: str, tokens: list[str]) -> None:
    for secret in [SECRET, *tokens]:
        assert secret not in text


def test_captured_events_and_errors_hold_no_secret_or_token(
    sandbox: SandboxServer, debug_logs: None
) -> None:
    with capture_logs() as logs:
        tokens, errors = exercise(sandbox)
    names = {e["event"] for e in logs}
    assert {"athena.token_minted", "athena.response", "athena.request_retried"} <= names
    minted = [e for e in logs if e["event"] == "athena.token_minted"]
    assert [(e["expires_in"], e["token_host"]) for e in minted] == [(3600.0, "127.0.0.1")] * 2
    assert_clean(repr(logs), tokens)
    for error in errors:
        assert_clean(f"{error!s} {error!r} {vars(error)!r}", tokens)


def test_rendered_log_output_holds_no_secret_or_token(
    sandbox: SandboxServer, rendered: io.StringIO
) -> None:
    tokens, _ = exercise(sandbox)
    output = rendered.getvalue()
    assert '"event": "athena.token_minted"' in output and '"event": "athena.response"' in output
    assert_clean(output, tokens)
