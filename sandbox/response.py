"""The value every route returns, and helpers to build one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox.appointments import render_json

JSON = "application/json;charset=UTF-8"


class Headers(Protocol):
    """Case-insensitive request headers (``email.message.Message`` or a dict in tests)."""

    def get(self, name: str, /) -> str | None:
        """The header's value, or None."""


@dataclass(frozen=True)
class Response:
    """Status, body and headers of one answer (Content-Length is added when sent)."""

    status: int
    body: bytes
    content_type: str | None = JSON
    headers: tuple[tuple[str, str], ...] = ()


def api_json(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """An API answer, encoded like athenahealth's (compact, escaped slashes, UTF-8)."""
    return Response(status, render_json(payload), JSON, headers)


def admin_json(status: int, payload: Any) -> Response:
    """An admin answer: plain readable JSON."""
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(), JSON)
