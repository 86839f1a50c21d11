"""The one place that turns an HTTP response (or a transport failure) into a value or an error.

    2xx + JSON                 -> the decoded body
    2xx + non-JSON             -> RetriableError (a gateway glitch answering 200 with HTML)
    2xx, not the listing asked -> RetriableError (see :func:`check_listing`)
    408, 425, 429, 5xx         -> RetriableError (429 and 503 carry Retry-After when sent)
    403 "Over Qps"/"Over Rate" -> RetriableError (the legacy gateway's throttle, ATHENA_API.md §4)
    401, 403                   -> AuthError (the client refreshes once on a plain 401)
    other 4xx, stray 3xx       -> FatalError; from the token endpoint every 4xx is an AuthError
    timeouts, connection drops -> RetriableError (see :func:`transport_error`)

Only the API's own short ``error``/``detailedmessage`` text is kept, truncated: bodies can hold
patient data, and the token endpoint's body holds the token.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import requests

from worker.athena.errors import AthenaError, AuthError, FatalError, RetriableError
from worker.athena.paging import totalcount_of
from worker.athena.retry import parse_retry_after

MAX_TEXT = 200
RETRIABLE_4XX = frozenset({408, 425, 429})
_ERROR_KEYS = ("error", "message", "Message")
_DETAIL_KEYS = ("detailedmessage", "error_description", "detail")
# The retired Mashery gateway throttled with 403 "Developer Over Qps"/"Developer Over Rate" (and
# "Account Over ..."), in an HTML or text body, and named it in its error headers
# (X-Mashery-Error-Code ERR_403_DEVELOPER_OVER_QPS, X-Error-Detail-Header): ATHENA_API.md §4.
_THROTTLE_MARKS = (
    "developer over qps",
    "developer over rate",
    "account over qps",
    "account over rate",
)
_THROTTLE_HEADERS = ("X-Mashery-Error-Code", "X-Error-Detail-Header", "X-Mashery-Error-Detail")
_THROTTLE_CODE = re.compile(r"over[ _](qps|rate)", re.IGNORECASE)
_THROTTLE_SCAN = 4096


class NonFinite(float):
    """``NaN``/``Infinity`` as the standard decoder reads them (not valid JSON). A float
    subclass, so encoding a record holding one falls back to ``json``, which writes it back
    as it came (and Postgres refuses it, as it refuses the record)."""


def truncate(text: str, limit: int = MAX_TEXT) -> str:
    """Collapse whitespace and cut text to at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _content_type(response: requests.Response) -> str:
    return (response.headers.get("Content-Type") or "").split(";")[0].strip().lower() or "none"


def _describe_body(response: requests.Response) -> str:
    if not response.content:
        return "an empty body"
    return f"a non-JSON ({_content_type(response)}) body"


def _first_text(body: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return truncate(value)
    return None


def api_message(response: requests.Response) -> tuple[str | None, str | None]:
    """Return the API's own (error, detailedmessage) if the body is a JSON object."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    fault = body.get("fault")
    if isinstance(fault, dict):  # Apigee gateway: {"fault": {"faultstring": ..., "detail": ...}}
        detail = fault.get("detail")
        code = detail.get("errorcode") if isinstance(detail, dict) else None
        return _first_text(fault, ("faultstring",)), _first_text({"c": code}, ("c",))
    return _first_text(body, _ERROR_KEYS), _first_text(body, _DETAIL_KEYS)


def _error_for(
    response: requests.Response, *, path: str, practice_id: str | None, token_endpoint: bool
) -> AthenaError:
    status = response.status_code
    api_error, detail = api_message(response)
    reason = truncate(response.reason or "", 60)
    if api_error is None and detail is None:
        reason = f"{reason} with {_describe_body(response)}".strip()
    fields: dict[str, Any] = {
        "status": status,
        "path": path,
        "practice_id": practice_id,
        "api_error": api_error,
        "detail": detail,
        "request_id": response.request.headers.get("X-Request-Id") if response.request else None,
    }
    if status in RETRIABLE_4XX or status >= 500 or _legacy_throttle(response):
        what = "throttled" if status in (403, 429) else "transient server error"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return RetriableError(f"{what}: {status} {reason}", retry_after=retry_after, **fields)
    if token_endpoint and 400 <= status < 500:
        return AuthError(f"token endpoint refused the credentials: {status} {reason}", **fields)
    if status in (401, 403):
        return AuthError(f"not authorized: {status} {reason}", **fields)
    return FatalError(f"request rejected: {status} {reason}", **fields)


def _legacy_throttle(response: requests.Response) -> bool:
    """A 403 whose body names the legacy gateway's throttle: wait and retry, like a 429."""
    if response.status_code != 403:
        return False
    if any(_THROTTLE_CODE.search(response.headers.get(h) or "") for h in _THROTTLE_HEADERS):
        return True
    text = " ".join(response.content[:_THROTTLE_SCAN].decode("utf-8", "replace").lower().split())
    return any(mark in text for mark in _THROTTLE_MARKS)


def listing_problem(body: Any, collection: str) -> str | None:
    """Why ``body`` is not a listing envelope holding ``collection``; None when it is one.

    An empty listing may leave its (empty) collection out when it says ``totalcount`` 0.
    Records are not looked at: one that is not an object is the mapper's to dead-letter.
    """
    if not isinstance(body, dict):
        return f"expected a JSON object holding {collection!r}, got {type(body).__name__}"
    if collection not in body:
        if totalcount_of(body) == 0:
            return None
        keys = ", ".join(sorted(str(k) for k in body)[:10]) or "none"
        return f"response has no {collection!r} collection (keys: {keys})"
    if not isinstance(body[collection], list):
        return f"{collection!r} is not a list"
    return None


def check_listing(body: Any, collection: str, *, path: str, practice_id: str | None) -> list[Any]:
    """The records of a listing's 200, or a RetriableError when it is not the envelope.

    Gateways answer 200 with such bodies during incidents (the request itself was fine), so it
    is a server fault: the caller sends the same request again, within its attempt budget.
    """
    problem = listing_problem(body, collection)
    if problem is not None:
        raise RetriableError(
            f"200 response is not the {collection!r} listing: {problem}",
            status=200,
            path=path,
            practice_id=practice_id,
        )
    records: list[Any] = body.get(collection, [])
    return records


def decode_response(
    response: requests.Response,
    *,
    path: str,
    practice_id: str | None,
    token_endpoint: bool = False,
) -> Any:
    """Return the decoded JSON of a successful response or raise the mapped error."""
    return decode_strictly(
        response, path=path, practice_id=practice_id, token_endpoint=token_endpoint
    )[0]


def decode_strictly(
    response: requests.Response,
    *,
    path: str,
    practice_id: str | None,
    token_endpoint: bool = False,
) -> tuple[Any, bool]:
    """As :func:`decode_response`, with whether the strict decoder (orjson) read the body: it
    refuses every value a database cannot hold (``NaN``/``Infinity``, ``1e999``, a lone
    surrogate), so nothing in such a body needs looking for them again."""
    if not 200 <= response.status_code < 300:
        raise _error_for(
            response, path=path, practice_id=practice_id, token_endpoint=token_endpoint
        )
    if response.status_code == 204:
        return None, True
    try:
        return orjson.loads(response.content), True
    except orjson.JSONDecodeError:
        pass  # not UTF-8, or JSON that only the standard decoder reads: let it decide
    try:
        return response.json(parse_constant=NonFinite), False
    except ValueError:
        raise RetriableError(
            f"{response.status_code} response with {_describe_body(response)} "
            "where JSON was expected (likely a gateway page)",
            status=response.status_code,
            path=path,
            practice_id=practice_id,
        ) from None


def transport_error(
    exc: requests.RequestException,
    *,
    path: str,
    practice_id: str | None,
    timeouts: tuple[float, float],
    request_id: str | None = None,
) -> AthenaError:
    """Map a requests transport exception to a RetriableError (or FatalError if not transient)."""
    fields: dict[str, Any] = {"path": path, "practice_id": practice_id, "request_id": request_id}
    if isinstance(exc, requests.ConnectTimeout):
        return RetriableError(f"connect timed out after {timeouts[0]:g}s", **fields)
    if isinstance(exc, requests.Timeout):
        return RetriableError(f"read timed out after {timeouts[1]:g}s", **fields)
    transient = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    if isinstance(exc, transient):
        return RetriableError(f"connection failed ({type(exc).__name__})", **fields)
    return FatalError(f"request could not be sent ({type(exc).__name__})", **fields)
