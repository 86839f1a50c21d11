"""Fixtures: a sandbox on a free loopback port per test, and a tiny authenticated HTTP client."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox import SandboxConfig, SandboxServer
from sandbox.testing import serve_sandbox

ANCHOR = dt.date(2026, 3, 1)
PRACTICE = "195900"


def make_config(**changes: Any) -> SandboxConfig:
    """The test configuration: fixed anchor date so dates are stable."""
    values: dict[str, Any] = {"anchor_date": ANCHOR, "appointments": 600}
    values.update(changes)
    return SandboxConfig(**values)


class Api:
    """Real HTTP against the sandbox, the way a client would call athenahealth."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()
        self._token: str | None = None

    def mint(self, **kwargs: Any) -> requests.Response:
        """POST the token endpoint (HTTP Basic with the default credentials unless given)."""
        kwargs.setdefault("auth", ("sandbox-client", "sandbox-secret"))
        kwargs.setdefault("data", {"grant_type": "client_credentials"})
        return self.http.post(f"{self.url}/oauth2/v1/token", timeout=10, **kwargs)

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.mint()
            assert response.status_code == 200, response.text
            self._token = response.json()["access_token"]
        return self._token

    def renew(self) -> None:
        """Take a new token next time (the sandbox's clock was advanced past this one's life)."""
        self._token = None

    def get(self, path: str, params: Any = None, *, token: str | None = None) -> requests.Response:
        """GET ``path`` (absolute, e.g. ``/v1/195900/providers``) with a bearer token."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.http.get(f"{self.url}{path}", params=params, headers=headers, timeout=10)

    def ok(self, path: str, params: Any = None) -> Any:
        """GET and decode a 200 answer."""
        response = self.get(path, params)
        assert response.status_code == 200, (response.status_code, response.text)
        return response.json()

    def all_pages(
        self, path: str, collection: str, params: dict[str, str], limit: int
    ) -> list[Any]:
        """Follow ``next`` links (host prepended, limit re-added) and return every record."""
        records: list[Any] = []
        page = self.ok(path, {**params, "limit": str(limit)})
        records.extend(page[collection])
        while "next" in page:
            response = self.http.get(
                f"{self.url}{page['next']}&limit={limit}",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            records.extend(page[collection])
        return records

    def admin(self, method: str, route: str, **kwargs: Any) -> requests.Response:
        """Call an admin route (no auth)."""
        return self.http.request(method, f"{self.url}/_sandbox/{route}", timeout=10, **kwargs)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A started sandbox (fixed anchor date, 600 appointments) on a free loopback port."""
    with serve_sandbox(make_config()) as server:
        yield server


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[Api]:
    """An HTTP client for the ``sandbox`` fixture."""
    client = Api(sandbox)
    yield client
    client.http.close()


BOOKED = f"/v1/{PRACTICE}/appointments/booked"
ALL_DAYS = {"startdate": "01/01/2025", "enddate": "12/31/2026"}
