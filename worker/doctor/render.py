"""A doctor report as terminal tables and as a Markdown support request."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.markup import escape
from rich.table import Table

from worker.doctor.report import Check, Report

STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}
API_SECTIONS = ("token", "practices", "practice")


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _text(check: Check) -> str:
    step = check.verdict.next_step
    return f"{check.verdict.text} → {step}" if step else check.verdict.text


def _safe(value: object) -> str:
    """Cell text for rich: API error texts may contain ``[...]``, never read as markup."""
    return escape(_cell(value))


def _status(check: Check) -> str:
    return f"[{STYLE[check.status]}]{check.status}[/]"


def setup_table(report: Report) -> Table:
    """Configuration, database and Redis: one row each."""
    table = Table(title="configuration and services")
    for name in ("check", "value", "status", "verdict / next step"):
        table.add_column(name)
    for c in report.checks:
        if c.section not in API_SECTIONS:
            table.add_row(_safe(c.name), _safe(c.value), _status(c), _safe(_text(c)))
    return table


def api_table(report: Report) -> Table:
    """The token endpoint and every probed endpoint: status, API error, records, verdict."""
    table = Table(title=escape(f"athenahealth API ({report.environment}, {report.base_url})"))
    for name in ("practice", "endpoint", "HTTP", "API error", "records", "status"):
        table.add_column(name, justify="right" if name in ("HTTP", "records") else "left")
    table.add_column("verdict / next step")
    for c in report.checks:
        if c.section in API_SECTIONS:
            table.add_row(
                _safe(c.practice_id if c.section == "practice" else ""),
                _safe(c.name),
                _safe(c.http_status),
                _safe(c.api_error),
                _safe(c.records),
                _status(c),
                _safe(_text(c)),
            )
    return table


def practices_table(report: Report) -> Table:
    """The practices the key can see (``/v1/1/practiceinfo``)."""
    table = Table(title="practices this key can see")
    table.add_column("practice id")
    table.add_column("name")
    for pid, name in report.visible_practices:
        table.add_row(escape(pid), escape(name))
    return table


def summary_line(report: Report) -> str:
    """One line: whether the sync can work."""
    failed = len(report.failures)
    warned = sum(1 for c in report.checks if c.status == "warn")
    if failed:
        return f"[red]{failed} check(s) failed[/], {warned} warning(s): the sync cannot work yet"
    if warned:
        return f"[yellow]everything the sync needs works[/], with {warned} warning(s)"
    return "[green]everything the sync needs works[/]"


def _md(value: object) -> str:
    return _cell(value).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md(v) for v in row) + " |" for row in rows]
    return lines


def support_markdown(report: Report) -> str:
    """A Markdown summary to paste into a support request: ids, statuses, request ids only."""
    client = next((c.value for c in report.checks if c.name == "ATHENA_CLIENT_ID"), None)
    failed = len(report.failures)
    lines = [
        "# athena-sync doctor report",
        "",
        f"- Generated: {report.generated_at:%Y-%m-%d %H:%M:%S} UTC (athena-sync {report.version})",
        f"- Environment: {report.environment}; API host {report.base_url}; token URL "
        f"{report.token_url}",
        f"- Client id: {client or 'not set'} (shortened)",
        f"- Result: {failed} of {len(report.checks)} checks failed"
        if failed
        else f"- Result: all {len(report.checks)} checks passed or were only warnings",
        "",
        "## Practices this key can see (`GET /v1/1/practiceinfo`)",
        "",
    ]
    if report.visible_practices:
        lines += _md_table(("practice id", "name"), report.visible_practices)
    else:
        lines.append("None listed (see the results below).")
    api_rows = [
        (
            c.practice_id if c.section == "practice" else "",
            f"GET {c.name}" if c.name.startswith("/") else c.name,
            c.http_status,
            c.api_error,
            c.records,
            c.status,
            _text(c),
            c.request_id,
        )
        for c in report.checks
        if c.section in API_SECTIONS
    ]
    lines += ["", "## API results", ""]
    lines += _md_table(
        ("practice", "request", "HTTP", "API error", "records", "status", "verdict", "request id"),
        api_rows,
    )
    setup = [
        (c.name, c.value, c.status, _text(c))
        for c in report.checks
        if c.section not in API_SECTIONS
    ]
    lines += ["", "## Configuration and services", ""]
    lines += _md_table(("check", "value", "status", "verdict"), setup)
    lines += [
        "",
        "Request ids are the `X-Request-Id` values athena-sync sent. This report holds no access "
        "token, client secret, password or response body.",
        "",
    ]
    return "\n".join(lines)
