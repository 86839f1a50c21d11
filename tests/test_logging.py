"""Logs never carry payloads, secrets or database error text, in either format."""

from __future__ import annotations

import io
import json

import pytest
import sqlalchemy as sa
import structlog

from worker.logging import configure_logging, safe_summary
from worker.settings import settings_from_env

SECRET_RECORD = {"patientid": "7895", "firstname": "Zoë-secret-name"}


def _database_error() -> sa.exc.DataError:
    engine = sa.create_engine("sqlite://")
    try:
        raise sa.exc.DataError(
            "INSERT INTO appointments VALUES (%(payload)s)",
            {"payload": str(SECRET_RECORD)},
            ValueError("invalid input: Zoë-secret-name"),
        )
    except sa.exc.DataError as exc:
        return exc
    finally:
        engine.dispose()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_a_crash_is_logged_without_locals_messages_or_sql(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging(settings_from_env({"LOG_FORMAT": fmt}), stream=stream)
    try:
        access_token = "tok-should-not-appear"  # a local in the crashing frame
        record = SECRET_RECORD
        assert access_token and record
        raise _database_error()
    except sa.exc.DataError:
        structlog.get_logger().exception("sync.unit_crashed", unit="providers:195900:full")
    finally:
        structlog.reset_defaults()
    output = stream.getvalue()
    assert "sync.unit_crashed" in output and "DataError" in output
    for leak in ("Zoë-secret-name", "tok-should-not-appear", "INSERT INTO", "7895"):
        assert leak not in output, leak
    assert "test_logging.py" in output, "frames (file:line) are kept for debugging"


def test_safe_summary_keeps_our_own_messages_and_drops_driver_text() -> None:
    from worker.athena.errors import RetriableError

    ours = RetriableError("giving up after 5 attempts", status=502, path="/providers")
    assert "giving up after 5 attempts" in safe_summary(ours)
    theirs = safe_summary(_database_error())
    assert theirs.startswith("DataError(ValueError) at ") and "secret" not in theirs


def _json_lines(configure_and_log, libraries_level: str = "WARNING") -> list[dict]:
    stream = io.StringIO()
    configure_logging(
        settings_from_env({"LOG_FORMAT": "json"}), stream=stream, libraries_level=libraries_level
    )
    try:
        configure_and_log()
    finally:
        structlog.reset_defaults()
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_fencing_token_is_a_number_and_is_kept_a_secret_token_is_not() -> None:
    def log() -> None:
        structlog.get_logger().warning("lease.acquired", lease="unit", token=42)
        structlog.get_logger().warning("athena.token_minted", token="eyJ-secret", secret=7)

    lease, minted = _json_lines(log)
    assert lease["token"] == 42
    assert minted["token"] == "[redacted]" and minted["secret"] == 7


def test_library_records_are_json_lines_with_their_own_level_and_no_exception_text() -> None:
    import logging

    def log() -> None:
        logging.getLogger("celery.worker").warning("worker %s lost", "w1")
        try:
            raise _database_error()
        except sa.exc.DataError:
            logging.getLogger("celery.app.trace").error("task failed", exc_info=True)

    warned, failed = _json_lines(log)
    assert (warned["event"], warned["level"], warned["logger"]) == (
        "worker w1 lost",
        "warning",
        "celery.worker",
    )
    assert failed["level"] == "error" and failed["error"].startswith("DataError(ValueError) at ")
    assert "Zoë-secret-name" not in json.dumps(failed)


def test_celerys_task_failure_and_retry_lines_carry_no_exception_text() -> None:
    """Celery formats the exception's text into the message itself (``Task %(name)s[%(id)s]
    %(description)s: %(exc)s``, its retry line too), so removing the traceback is not enough."""
    import logging

    from celery.app import trace

    def log() -> None:
        context = {
            "hostname": "w1",
            "id": "abc-1",
            "name": "tasks.sync_tasks.run_unit",
            "args": "('195900',)",
            "kwargs": "{}",
            "traceback": "…",
            "description": "raised unexpected",
            "internal": False,
        }
        logger = logging.getLogger("celery.app.trace")
        try:
            raise _database_error()
        except sa.exc.DataError as exc:
            context["exc"] = repr(exc)
            logger.error(trace.LOG_FAILURE.strip(), context, exc_info=True)
        logger.info(trace.LOG_RETRY.strip(), {**context, "exc": "Retry in 5s: Zoë-secret-name"})

    failed, retried = _json_lines(log, libraries_level="INFO")  # as a worker logs
    text = json.dumps([failed, retried])
    assert "Zoë-secret-name" not in text
    assert failed["event"].startswith(
        "Task tasks.sync_tasks.run_unit[abc-1] raised unexpected: DataError(ValueError) at "
    )
    assert (
        retried["event"] == "Task tasks.sync_tasks.run_unit[abc-1] retry: [exception text withheld]"
    )
