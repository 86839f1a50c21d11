"""The requests.Session the client speaks through: pooled connections, TLS verified, bearer auth."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from worker.settings import Settings, SettingsError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
RATE_HEADER_PREFIXES = ("x-ratelimit", "ratelimit", "x-quota", "x-rate", "retry-after")


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (127.0.0.1, localhost, ::1)."""
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def check_url(variable: str, url: str) -> None:
    """Refuse plain http to anything but loopback: the bearer token would travel in clear."""
    if urlsplit(url).scheme != "https" and not is_loopback(url):
        raise SettingsError(variable, f"must use https for a non-loopback host, got {url!r}")


def build_session(settings: Settings, *, pool_size: int = 16) -> requests.Session:
    """A pooled session that always verifies TLS (plain http is only allowed on loopback)."""
    check_url("ATHENA_BASE_URL", settings.athena_base_url)
    check_url("ATHENA_TOKEN_URL", settings.athena_token_url)
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = True
    if is_loopback(settings.athena_base_url) and is_loopback(settings.athena_token_url):
        session.trust_env = False  # no proxy from the environment for a local sandbox
    return session


class BearerAuth(requests.auth.AuthBase):
    """Adds ``Authorization: Bearer <token>``; its repr never shows the token."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._access_token}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


def rate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Rate/quota headers as flat log fields (``X-RateLimit-Limit`` -> ``x_ratelimit_limit``)."""
    return {
        name.lower().replace("-", "_"): value
        for name, value in headers.items()
        if name.lower().startswith(RATE_HEADER_PREFIXES)
    }


def server_time(headers: Mapping[str, str], *, elapsed: timedelta) -> datetime | None:
    """The API's clock when the request was sent: the response's ``Date`` (GMT, to the second)
    less ``elapsed``, the time the exchange took. The server stamps ``Date`` as it answers, after
    its read began; taking the exchange off keeps the result no later than the sending even when
    an answer is slow. Aware UTC; None when ``Date`` is absent or unreadable (a gateway may send
    anything)."""
    raw = headers.get("Date")
    if not raw:
        return None
    try:
        stamped = parsedate_to_datetime(raw.strip())
        if stamped.tzinfo is None:  # "-0000": HTTP dates are GMT whatever the zone says
            stamped = stamped.replace(tzinfo=UTC)
        return stamped.astimezone(UTC) - elapsed
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
