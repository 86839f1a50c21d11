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
    """Last line of defence: a field that looks like a secret never reaches a handler. A whole
    number is not a secret (a lease's fencing ``token``, a count): only text is redacted."""
    for key in list(event):
        if key.lower() in _REDACT_KEYS and not _number(event[key]):
            event[key] = "[redacted]"
    return event


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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


_WITHHELD = "[exception text withheld]"


def _library_exception_text(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library's line that formats an exception's text into its message (Celery's "Task …
    raised unexpected: %(exc)s", its retry line) is formatted again with the safe summary in
    its place: a database error's text may quote a record's values."""
    args = event.pop("positional_args", None)  # never rendered: they may quote anything
    record = event.get("_record")
    if record is None or not isinstance(args, dict) or "exc" not in args:
        return event
    exc_info = event.get("exc_info")
    exc = exc_info[1] if isinstance(exc_info, tuple) else None
    safe = {**args, "exc": safe_summary(exc) if exc is not None else _WITHHELD}
    try:
        event["event"] = str(record.msg) % safe
    except (TypeError, KeyError, ValueError):
        event["event"] = f"{record.name}: a line about an exception ({_WITHHELD})"
    return event


LOGGER_NAME = "athena_sync"
"""The stdlib logger every structlog event goes through (its level is LOG_LEVEL)."""


def _renderer(settings: Settings) -> Any:
    if settings.log_format == "json":
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler athena-sync installs on the root logger (found again to be replaced)."""


def configure_logging(
    settings: Settings, *, stream: Any = None, libraries_level: str = "WARNING"
) -> None:
    """Set up structlog, and the root logger with it, for console (human) or json (machine)
    output on ``stream`` (stderr).

    Every event, ours and any library's (Celery, SQLAlchemy, Alembic), becomes one line in the
    same format with its own level: ours through the ``athena_sync`` logger at LOG_LEVEL, the
    libraries' at ``libraries_level`` or LOG_LEVEL, whichever is higher (a CLI keeps them quiet;
    a worker shows Celery's INFO lines).
    """
    level = getattr(logging, settings.log_level, logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        pass_foreign_args=True,  # for _library_exception_text, which removes them
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _library_exception_text],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact,
            _safe_exception,
            _renderer(settings),
        ],
    )
    handler = _Handler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, getattr(logging, libraries_level, logging.WARNING)))
    logging.captureWarnings(True)  # Python warnings become log lines too (level warning)
    ours = logging.getLogger(LOGGER_NAME)
    ours.setLevel(level)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: ours,
        cache_logger_on_first_use=False,
    )
