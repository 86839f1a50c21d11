"""Errors raised by the athenahealth client.

    AthenaError                      base; carries status, path, practice_id, api_error, detail,
                                     retry_after (seconds, from a Retry-After header), request_id
    ├── RetriableError               429, 5xx, timeouts, connection errors: try again later
    │   └── RetriesExhausted         still retriable after the attempt budget was spent
    ├── FatalError                   the request itself is wrong; retrying will not help (400, 404)
    │   ├── AuthError                401 after one refresh, 403, token endpoint refusing credentials
    │   ├── PagingError              the server's paging misbehaves (offset not advancing, overrun)
    │   └── AnswerError              a 200 that contradicts its request (a multi-department
    │                                listing holding departments not asked for)
    └── (none carry response bodies, tokens or secrets)

Messages contain the API's own short ``error``/``detailedmessage`` text only: whole bodies can
hold patient data.
"""

from __future__ import annotations


class AthenaError(Exception):
    """Base of every error the client raises."""

    error_class = "client_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        path: str | None = None,
        practice_id: str | None = None,
        api_error: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.path = path
        self.practice_id = practice_id
        self.api_error = api_error
        self.detail = detail
        self.retry_after = retry_after
        self.request_id = request_id
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.path:
            parts.append(f"path={self.path}")
        if self.practice_id:
            parts.append(f"practice={self.practice_id}")
        if self.api_error:
            parts.append(f"error={self.api_error!r}")
        if self.detail:
            parts.append(f"detail={self.detail!r}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class RetriableError(AthenaError):
    """A transient failure (429, 5xx, timeout, connection): worth retrying later."""

    error_class = "retriable"


class RetriesExhausted(RetriableError):
    """A retriable failure that persisted through every allowed attempt."""

    error_class = "retries_exhausted"


class FatalError(AthenaError):
    """A failure retrying will not fix: bad request, unknown practice or path."""

    error_class = "client_error"


class AuthError(FatalError):
    """Credentials or permissions are wrong (401 after a refresh, 403, invalid_client)."""

    error_class = "auth"


class PagingError(FatalError):
    """The server's paging does not advance or overruns its own totalcount."""

    error_class = "paging"


class AnswerError(FatalError):
    """A 200 whose records contradict the request (departments it was not asked for): nothing
    in that answer can be trusted to account for what was asked."""

    error_class = "client_error"
