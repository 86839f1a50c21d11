"""What `athena-sync doctor` found: one ``Check`` per fact, gathered in a ``Report``.

A check never holds a token, a secret or a response body: only statuses, the API's own short
error text, counts, ids and request ids, so a report can be pasted into a support request.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]
STATUS_ORDER: dict[str, int] = {"ok": 0, "skip": 1, "warn": 2, "fail": 3}
OK_EXIT = 0
FAILED_EXIT = 1


@dataclass(frozen=True)
class Verdict:
    """A plain-language reading of one result and what to do about it."""

    status: Status
    text: str
    next_step: str | None = None


@dataclass(frozen=True)
class Check:
    """One thing the doctor looked at: a setting, a service, the token endpoint or an endpoint."""

    section: str
    """``configuration``, ``database``, ``redis``, ``token``, ``practices`` or ``practice``."""
    name: str
    """The setting, service or endpoint path (``/departments``)."""
    verdict: Verdict
    practice_id: str | None = None
    value: str | None = None
    """What a configuration row shows (never a secret)."""
    http_status: int | None = None
    api_error: str | None = None
    records: int | None = None
    request_id: str | None = None
    elapsed_ms: float | None = None

    @property
    def status(self) -> Status:
        """The verdict's status."""
        return self.verdict.status

    def to_json(self) -> dict[str, Any]:
        """Flat JSON form: the verdict's fields inline."""
        data = asdict(self)
        verdict = data.pop("verdict")
        return {
            **data,
            "status": verdict["status"],
            "verdict": verdict["text"],
            "next_step": verdict["next_step"],
        }


@dataclass(frozen=True)
class Report:
    """Everything one doctor run found, and whether the sync can work."""

    generated_at: datetime
    version: str
    environment: str
    base_url: str
    token_url: str
    checks: tuple[Check, ...]
    visible_practices: tuple[tuple[str, str], ...] = field(default=())
    """(practice id, name) pairs from ``/v1/1/practiceinfo``."""

    @property
    def failures(self) -> tuple[Check, ...]:
        """The checks that stop the sync from working."""
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def exit_code(self) -> int:
        """0 only when nothing failed (warnings are reported, not fatal)."""
        return FAILED_EXIT if self.failures else OK_EXIT

    def to_json(self) -> dict[str, Any]:
        """The report for scripts (``--json``)."""
        return {
            "ok": not self.failures,
            "exit_code": self.exit_code,
            "generated_at": self.generated_at.isoformat(),
            "version": self.version,
            "environment": self.environment,
            "base_url": self.base_url,
            "token_url": self.token_url,
            "visible_practices": [
                {"practiceid": pid, "name": name} for pid, name in self.visible_practices
            ],
            "checks": [c.to_json() for c in self.checks],
        }
