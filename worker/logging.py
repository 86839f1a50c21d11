"""structlog, configured once. Events have dotted names and flat fields; never payloads."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

from worker.settings import Settings

_REDACT_KEYS = frozenset(
    {"access_token", "token", "client_secret", "secret", "authorization", "password", "raw"}
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: a field that looks like a secret never reaches a handler."""
    for key in list(event):
        if key.lower() in _REDACT_KEYS:
            event[key] = "[redacted]"
    return event


# Exceptions whose text is built by athena-sync itself (ids, statuses, the API's short error text)
# and so may be shown; any other exception's text may quote data (SQL parameters, payloads).
_SAFE_TEXT = ("AthenaError", "SettingsError", "BadRecord", "LeaseLost", "DeliveriesExhausted")


def _safe_text(exc: BaseException) -> bool:
    return any(cls.__name__ in _SAFE_TEXT for cls in type(exc).__mro__)


def _where(exc: BaseException) -> str:
    """The innermost frame as ``file:line in function`` (no values)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 2)[-1]}:{last.lineno} in {last.name}"


def safe_summary(exc: BaseException) -> str:
    """One line about an exception that is safe to log or store: its type, the database's
    SQLSTATE if any, where it was raised, and its text only if athena-sync wrote that text."""
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    parts = [type(exc).__name__]
    if orig is not None:
        parts.append(f"({type(orig).__name__}{f', SQLSTATE {state}' if state else ''})")
    if _safe_text(exc):
        parts.append(f": {exc}")
    parts.append(f" at {_where(exc)}")
    return "".join(parts)[:2000]


def _safe_exception(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace ``exc_info`` with a safe summary and a traceback of frames only (no locals, no
    messages): tracebacks with locals would print records, tokens and SQL parameters."""
    exc_info = event.pop("exc_info", None)
    if not exc_info:
        return event
    exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
    if isinstance(exc_info, tuple):
        exc = exc_info[1]
    if exc is None:
        return event
    event["error"] = safe_summary(exc)
    event["frames"] = " < ".join(
        f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}"
        for f in reversed(traceback.extract_tb(exc.__traceback__))
    )
    return event


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """Set up structlog for console (human) or json (machine) output on stderr."""
    level = getattr(logging, settings.log_level, logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            _safe_exception,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
