"""The sandbox the contenders read from: a child process, its counters, and what the job needs.

The sandbox runs as ``athena-sync sandbox serve`` in its own process, so its CPU and memory are
never counted against a contender. Request counts and token mints are read from its
``/_sandbox/stats`` (deltas around each run), never taken from a contender's own claim.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import requests

PRACTICE = "195900"
CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
TOKEN_PATH = "/oauth2/v1/token"
SEED = 5
# The preview allows 5 mints a minute; short benchmark runs, each a new process minting its own
# token, would hit that, so the sandbox allows more. Mints are counted either way.
MINTS_PER_MINUTE = 120
# The US fall-back Sunday (2026-11-01) lies inside the default 90-day window around this day.
ANCHOR = date(2026, 10, 20)

# Query parameters every contender sends (the sync's own), so the sandbox does the same work and
# serves the same cached pages to all of them.
LISTINGS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("providers", "/providers", {"showallproviderids": "true"}),
    ("departments", "/departments", {"showalldepartments": "true"}),
    ("appointmenttypes", "/appointmenttypes", {"hidenonpatient": "false"}),
)
BOOKED_PATH = "/appointments/booked"
BOOKED_PARAMS = {"showcancelled": "true", "showcopay": "false"}


@dataclass(frozen=True)
class DatasetSpec:
    """What the sandbox serves."""

    appointments: int
    departments: int
    days: int
    anchor: date = ANCHOR

    @property
    def window(self) -> tuple[date, date]:
        """The served appointment days (the DST Sundays far outside them are left out)."""
        # Imported here: contender processes import this module and must not pay for the
        # sandbox's own modules in their memory.
        from sandbox.config import SandboxConfig

        config = SandboxConfig(anchor_date=self.anchor, days=self.days)
        return config.first_day, config.last_day


def athena_date(day: date) -> str:
    """MM/DD/YYYY."""
    return day.strftime("%m/%d/%Y")


def booked_params(department_id: str, start: date, end: date) -> dict[str, str]:
    """The query of one department's appointment listing over [start, end]."""
    return {
        **BOOKED_PARAMS,
        "departmentid": department_id,
        "startdate": athena_date(start),
        "enddate": athena_date(end),
    }


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxProcess:
    """``athena-sync sandbox serve`` in a child process, stopped by ``close``."""

    def __init__(self, spec: DatasetSpec, *, start_timeout: float = 600.0) -> None:
        self.spec = spec
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [
            sys.executable,
            "-c",
            "from worker.cli import main; main()",
            "sandbox",
            "serve",
            "--port",
            str(port),
            "--quiet",
            "--appointments",
            str(spec.appointments),
            "--departments",
            str(spec.departments),
            "--days",
            str(spec.days),
            "--seed",
            str(SEED),
            "--anchor-date",
            spec.anchor.isoformat(),
            "--token-mints-per-minute",
            str(MINTS_PER_MINUTE),
        ]
        started = time.perf_counter()
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self._http = requests.Session()
        self._wait_ready(start_timeout)
        self.startup_seconds = time.perf_counter() - started

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {self._process.returncode}")
            try:
                self._http.get(f"{self.url}/_sandbox/config", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError(f"the sandbox did not start within {timeout:.0f} s")

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._process.pid

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``."""
        response = self._http.get(f"{self.url}/_sandbox/stats", timeout=10)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def set_faults(self, **faults: Any) -> None:
        """Replace the faults in force (``POST /_sandbox/faults``); no arguments switch them off."""
        response = self._http.post(f"{self.url}/_sandbox/faults", json=faults, timeout=10)
        response.raise_for_status()

    def truth(self) -> dict[str, Any]:
        """Everything the practice holds (large: only for small datasets)."""
        response = self._http.get(f"{self.url}/_sandbox/truth", timeout=120)
        response.raise_for_status()
        truth: dict[str, Any] = response.json()
        return truth

    def close(self) -> None:
        """Stop the server."""
        self._http.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def api_requests(stats: dict[str, Any]) -> int:
    """``/v1`` requests answered so far (any status) in a ``/_sandbox/stats`` snapshot."""
    return sum(
        n
        for template, by_status in stats["requests"].items()
        if template != TOKEN_PATH
        for n in by_status.values()
    )


@dataclass(frozen=True)
class StatsDelta:
    """What the sandbox answered between two ``/_sandbox/stats`` snapshots."""

    api_requests: int
    token_requests: int
    token_mints: int
    throttled: int

    @classmethod
    def between(cls, before: dict[str, Any], after: dict[str, Any]) -> StatsDelta:
        """Deltas of ``/v1`` requests, token requests, mints and 429 answers to ``/v1``."""

        def count(snapshot: dict[str, Any], *, token: bool, status: str | None = None) -> int:
            total = 0
            for template, by_status in snapshot["requests"].items():
                if (template == TOKEN_PATH) is not token:
                    continue
                total += sum(n for s, n in by_status.items() if status in (None, s))
            return total

        return cls(
            api_requests=count(after, token=False) - count(before, token=False),
            token_requests=count(after, token=True) - count(before, token=True),
            token_mints=after["token_mints"] - before["token_mints"],
            throttled=count(after, token=False, status="429")
            - count(before, token=False, status="429"),
        )


@dataclass(frozen=True)
class Dataset:
    """Record counts as the API serves them for the job, and the pages each plan needs."""

    listing_totals: dict[str, int]
    department_ids: tuple[str, ...]
    per_department: dict[str, int]
    per_window: dict[tuple[str, date, date], int] = field(default_factory=dict)

    @property
    def appointments(self) -> int:
        """Appointments in the window."""
        return sum(self.per_department.values())

    @property
    def records(self) -> int:
        """Every record the job reads once: providers, departments, types and appointments."""
        return sum(self.listing_totals.values()) + self.appointments

    def pages_needed(self, limit: int, *, windowed: bool = False) -> int:
        """Requests a plan needs at ``limit`` per page: one listing per resource and one per
        department (``windowed``: per department and window); an empty listing is one page."""

        def pages(count: int) -> int:
            return max(1, -(-count // limit))

        listings = sum(pages(n) for n in self.listing_totals.values())
        booked = self.per_window.values() if windowed else self.per_department.values()
        return listings + sum(pages(n) for n in booked)


def split_windows(start: date, end: date, max_days: int) -> list[tuple[date, date]]:
    """[start, end] in consecutive windows of at most ``max_days`` (as the sync splits it)."""
    windows, cursor = [], start
    while cursor <= end:
        last = min(end, cursor + timedelta(days=max_days - 1))
        windows.append((cursor, last))
        cursor = last + timedelta(days=1)
    return windows


def token_session(url: str) -> requests.Session:
    """A session carrying a freshly minted bearer token (a harness helper, never a contender)."""
    http = requests.Session()
    response = http.post(
        f"{url}{TOKEN_PATH}",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    )
    response.raise_for_status()
    http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return http


def measure_dataset(url: str, window: tuple[date, date], *, window_days: int = 31) -> Dataset:
    """Ask the API for ``totalcount`` of every listing the job reads (small requests)."""
    http = token_session(url)

    def get(path: str, params: dict[str, str]) -> dict[str, Any]:
        response = http.get(
            f"{url}/v1/{PRACTICE}{path}", params={"limit": "5000", **params}, timeout=60
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    try:
        totals = {name: int(get(path, params)["totalcount"]) for name, path, params in LISTINGS}
        departments = get("/departments", {"showalldepartments": "true"})["departments"]
        ids = tuple(str(d["departmentid"]) for d in departments)

        def booked(dept: str, start: date, end: date) -> int:
            body = get(BOOKED_PATH, {**booked_params(dept, start, end), "limit": "1"})
            return int(body["totalcount"])

        per_department = {d: booked(d, *window) for d in ids}
        per_window = {
            (d, s, e): booked(d, s, e) for d in ids for s, e in split_windows(*window, window_days)
        }
    finally:
        http.close()
    return Dataset(totals, ids, per_department, per_window)


Listing = tuple[str, dict[str, str], str]  # path, params, collection


def job_plan(dataset: Dataset, window: tuple[date, date], *, windowed: bool) -> list[Listing]:
    """Every listing a plan reads: the reference listings (and the default departments one),
    then each department's appointments over the window or per 31-day window."""
    plan: list[Listing] = [(path, params, name) for name, path, params in LISTINGS]
    plan.append(("/departments", {}, "departments"))
    for dept in dataset.department_ids:
        spans = [(s, e) for d, s, e in dataset.per_window if d == dept] if windowed else [window]
        plan.extend((BOOKED_PATH, booked_params(dept, s, e), "appointments") for s, e in spans)
    return plan


def warm_cache(url: str, plan: list[Listing], limit: int) -> int:
    """Read every page of ``plan`` once so the sandbox serves it from its page cache (the
    contenders then measure themselves, not the sandbox rendering JSON). Returns requests."""
    http = token_session(url)
    sent = 0
    try:
        for path, params, collection in plan:
            offset = 0
            while True:
                query = {**params, "limit": str(limit), "offset": str(offset)}
                body = http.get(f"{url}/v1/{PRACTICE}{path}", params=query, timeout=60).json()
                sent += 1
                returned = len(body.get(collection, []))
                offset += returned
                if returned < limit or offset >= int(body.get("totalcount", 0)):
                    break
    finally:
        http.close()
    return sent
