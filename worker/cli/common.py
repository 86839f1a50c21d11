"""Helpers shared by CLI verbs: settings and logging, configured once per invocation."""

from __future__ import annotations

from worker.logging import configure_logging
from worker.runtime import Runtime, open_runtime
from worker.settings import Settings, load_settings


def load() -> Settings:
    """Validated settings, with logging configured from them."""
    settings = load_settings()
    configure_logging(settings)
    return settings


def runtime_for(settings: Settings, *, with_client: bool = True) -> Runtime:
    """The runtime; without an API client for verbs that only read the database."""
    return open_runtime(settings, with_client=with_client)
